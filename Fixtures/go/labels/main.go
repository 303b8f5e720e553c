// Two goroutines under profiler labels spin in the same function: {job: import}
// all the time, {job: export} a third of the time (10 ms of spinning, 20 ms of
// sleep). Each counts the calls it made: the same work a call, so their counts
// split the CPU time between the two jobs as the program itself measured it.
// Prints "ready PID" once both run; each line "report" on stdin is answered with
// "import N export M", the calls made so far. Exits at the end of stdin.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync/atomic"
	"time"
)

var sink atomic.Int64

//go:noinline
func spin(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		s += i ^ (s >> 3)
	}
	return s
}

func importer(calls *atomic.Int64) {
	for {
		sink.Add(int64(spin(20000)))
		calls.Add(1)
	}
}

func exporter(calls *atomic.Int64) {
	for {
		start := time.Now()
		for time.Since(start) < 10*time.Millisecond {
			sink.Add(int64(spin(20000)))
			calls.Add(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func main() {
	var imports, exports atomic.Int64
	pprof.Do(context.Background(), pprof.Labels("job", "import"), func(context.Context) { go importer(&imports) })
	pprof.Do(context.Background(), pprof.Labels("job", "export"), func(context.Context) { go exporter(&exports) })
	for imports.Load() == 0 || exports.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("ready %d\n", os.Getpid())
	input := bufio.NewScanner(os.Stdin)
	for input.Scan() {
		if input.Text() == "report" {
			fmt.Printf("import %d export %d\n", imports.Load(), exports.Load())
		}
	}
}
