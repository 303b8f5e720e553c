// Go calling C: a goroutine blocks in read(2) inside a C function called
// through cgo, so its thread's stack is C frames on top of Go frames; and a
// goroutine that never blocks (running, or preempted, whenever it is looked at).
// Prints "ready PID" once the first is in the read; exits when stdin closes.
package main

/*
#include <unistd.h>

__attribute__((noinline)) int c_read_byte(int fd) {
	char byte;
	return (int)read(fd, &byte, 1);
}

__attribute__((noinline)) int c_wait_for_byte(int fd) {
	int n = c_read_byte(fd);
	__asm__ volatile("" ::: "memory");  // keeps this frame from becoming a tail call
	return n;
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

func waitInC(fd int) {
	C.c_wait_for_byte(C.int(fd))
}

var spins uint64

//go:noinline
func spin() {
	for {
		atomic.AddUint64(&spins, 1)
	}
}

func inSyscall() bool {
	buf := make([]byte, 1<<16)
	dump := buf[:runtime.Stack(buf, true)]
	return bytes.Contains(dump, []byte("[syscall]:\nmain._Cfunc_c_wait_for_byte("))
}

func main() {
	var pipe [2]int
	if err := syscall.Pipe(pipe[:]); err != nil {
		panic(err)
	}
	go waitInC(pipe[0])
	go spin()
	for !inSyscall() {
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("ready %d\n", os.Getpid())
	buf := make([]byte, 64)
	for {
		if n, _ := os.Stdin.Read(buf); n <= 0 {
			return
		}
	}
}
