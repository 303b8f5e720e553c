// A Pyroscope-style ingest receiver for the tests of `attach --push`: it takes
// POST /ingest?name=…&from=…&until=…&format=pprof with the profile in the
// multipart field "profile" (as Pyroscope's own server does), keeps each profile
// in a file, and tells the test about it when asked: each line "next" on stdin is
// answered with the next upload ("upload name=… from=… until=… format=…
// rate=… file=…"), or "none" after 60 s without one. With -fail N the first N
// uploads are answered 500, to see them retried. Exits at end of stdin.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

func main() {
	fail := flag.Int64("fail", 0, "answer the first N uploads with 500")
	flag.Parse()
	dir, err := os.MkdirTemp("", "ingest-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	uploads := make(chan string, 100)
	var count int64
	http.HandleFunc("/ingest", func(w http.ResponseWriter, r *http.Request) {
		n := atomic.AddInt64(&count, 1)
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if n <= *fail {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		file, _, err := r.FormFile("profile")
		if err != nil {
			http.Error(w, "no profile field: "+err.Error(), http.StatusBadRequest)
			return
		}
		defer file.Close()
		path := filepath.Join(dir, fmt.Sprintf("%d.pb.gz", n))
		out, err := os.Create(path)
		if err == nil {
			_, err = io.Copy(out, file)
			out.Close()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		q := r.URL.Query()
		uploads <- fmt.Sprintf("upload name=%s from=%s until=%s format=%s rate=%s file=%s",
			q.Get("name"), q.Get("from"), q.Get("until"), q.Get("format"), q.Get("sampleRate"), path)
		w.WriteHeader(http.StatusOK)
	})
	go http.Serve(listener, nil)
	fmt.Printf("ready %d %d\n", os.Getpid(), listener.Addr().(*net.TCPAddr).Port)
	input := bufio.NewScanner(os.Stdin)
	for input.Scan() {
		select {
		case line := <-uploads:
			fmt.Println(line)
		case <-time.After(60 * time.Second):
			fmt.Println("none")
		}
	}
}
