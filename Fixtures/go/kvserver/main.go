// A key-value server shaped like the reference document's: an HTTP server with
// net/http/pprof, a TTL collector on a time.Ticker, a goroutine blocked in a raw
// syscall.Read on a pipe, and three workers parked on one channel. It prints
// "ready PID PORT" once every one of those goroutines is parked where it says,
// and exits when stdin reaches end of file. With an argument N, N more goroutines
// wait on a channel in main.idle (for goroutine reads at scale).
package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

type entry struct {
	value   string
	expires time.Time
}

type Store struct {
	mu   sync.Mutex
	data map[string]entry
}

func (s *Store) Put(key, value string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = entry{value, time.Now().Add(ttl)}
}

// StartTTLGC drops expired keys once per period.
func (s *Store) StartTTLGC(period time.Duration) {
	go func() {
		ticker := time.NewTicker(period)
		defer ticker.Stop()
		for range ticker.C {
			s.collect()
		}
	}()
}

func (s *Store) collect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for key, e := range s.data {
		if now.After(e.expires) {
			delete(s.data, key)
		}
	}
}

// readPipe sits in the read system call itself: no netpoller, as in the reference.
func readPipe(fd int) {
	buf := make([]byte, 64)
	for {
		n, err := syscall.Read(fd, buf)
		if n <= 0 || err != nil {
			return
		}
	}
}

func worker(jobs <-chan string, store *Store) {
	for key := range jobs {
		store.Put(key, "done", time.Minute)
	}
}

// parked reports whether every goroutine the fixture promises is where it says.
func parked() bool {
	buf := make([]byte, 1<<20)
	dump := buf[:runtime.Stack(buf, true)]
	return bytes.Count(dump, []byte("[chan receive]:\nmain.worker(")) == 3 &&
		bytes.Contains(dump, []byte("[chan receive]:\nmain.(*Store).StartTTLGC.func1(")) &&
		bytes.Contains(dump, []byte("[syscall]:\nsyscall.Syscall(")) &&
		bytes.Contains(dump, []byte("[IO wait]:\ninternal/poll.runtime_pollWait("))
}

// idle waits on a channel nobody closes.
func idle(never <-chan struct{}, started *sync.WaitGroup) {
	started.Done()
	<-never
}

func main() {
	extra := 0
	if len(os.Args) > 1 {
		extra, _ = strconv.Atoi(os.Args[1])
	}
	store := &Store{data: map[string]entry{}}
	store.StartTTLGC(time.Hour)

	jobs := make(chan string)
	for i := 0; i < 3; i++ {
		go worker(jobs, store)
	}

	var pipe [2]int
	if err := syscall.Pipe(pipe[:]); err != nil {
		panic(err)
	}
	go readPipe(pipe[0])

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(listener, nil)

	// After the others: runtime.Stack lists goroutines in creation order, and parked
	// reads only the first MiB of it.
	never := make(chan struct{})
	var started sync.WaitGroup
	started.Add(extra)
	for i := 0; i < extra; i++ {
		go idle(never, &started)
	}
	started.Wait()

	for !parked() {
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("ready %d %d\n", os.Getpid(), listener.Addr().(*net.TCPAddr).Port)

	// Until stdin closes; the main goroutine then sits in a read system call too.
	buf := make([]byte, 64)
	for {
		if n, _ := os.Stdin.Read(buf); n <= 0 {
			return
		}
	}
}
