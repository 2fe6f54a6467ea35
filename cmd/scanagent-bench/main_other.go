//go:build !linux

// Command scanagent-bench measures scanagent on Linux; see main.go.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "scanagent-bench runs on Linux only (it reads /proc and uses pseudo-terminals)")
	os.Exit(2)
}
