// Many goroutines, for `dump --goroutines` at scale (bench/run, DumpGoTests):
// argv[1] of them (default 1000), half parked on a channel receive, half in
// time.Sleep, one more locked to its thread, three with profiler labels, plus
// the program's own endpoint /debug/pprof/ to compare with.
// Prints "ready PID PORT" once every goroutine is parked; exits at end of stdin.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

func receiver(ch chan int) { <-ch }

func sleeper() { time.Sleep(24 * time.Hour) }

// Goroutines started under profiler labels (they inherit them): two under
// {job: import, shard: 1}, one under {job: export}. Go groups them by labels.
func labeled(ch chan int) { <-ch }

// One goroutine locked to its thread: Go's debug=2 says so in its header.
func locked(ch chan int) {
	runtime.LockOSThread()
	<-ch
}

func main() {
	count := 1000
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil {
			count = n
		}
	}
	never := make(chan int)
	for i := 0; i < count; i++ {
		if i%2 == 0 {
			go receiver(never)
		} else {
			go sleeper()
		}
	}
	go locked(never)
	pprof.Do(context.Background(), pprof.Labels("job", "import", "shard", "1"), func(context.Context) {
		go labeled(never)
		go labeled(never)
	})
	pprof.Do(context.Background(), pprof.Labels("job", "export"), func(context.Context) { go labeled(never) })
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(listener, nil)
	// Every goroutine started and parked before the test looks.
	for runtime.NumGoroutine() < count+6 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	fmt.Printf("ready %d %d\n", os.Getpid(), listener.Addr().(*net.TCPAddr).Port)
	io.Copy(io.Discard, os.Stdin)
}
