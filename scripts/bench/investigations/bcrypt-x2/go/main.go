// One-off: CPU time of golang.org/x/crypto/bcrypt verifications, to compare with bcrypt-time.
// Build offline from Debian packages (see ../README.md): go run . COST N
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	cost, _ := strconv.Atoi(os.Args[1])
	n, _ := strconv.Atoi(os.Args[2])
	pw := []byte("correct horse battery staple")
	h, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		panic(err)
	}
	s := make([]float64, n)
	c := make([]float64, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		c0 := cpu()
		if bcrypt.CompareHashAndPassword(h, pw) != nil {
			panic("mismatch")
		}
		c[i] = cpu() - c0
		s[i] = float64(time.Since(t).Nanoseconds()) / 1e6
	}
	sort.Float64s(s)
	sort.Float64s(c)
	fmt.Printf("{\"go\":1,\"cost\":%d,\"n\":%d,\"min_ms\":%.3f,\"median_ms\":%.3f,\"min_cpu_ms\":%.3f,\"median_cpu_ms\":%.3f}\n", cost, n, s[0], s[n/2], c[0], c[n/2])
}

func cpu() float64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 2, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec)*1e3 + float64(ts.Nsec)/1e6
}
