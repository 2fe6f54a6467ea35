package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"scanagent/internal/crypto"
)

// encryptCmd prints the platform's encrypted form of a value, so a
// technician can compare with what the platform's staff compute.
type encryptCmd struct{}

func (c *encryptCmd) Run(_ context.Context, e *env, args []string) error {
	fs := newFlagSet("encrypt")
	appID := fs.String("app-id", "", "the platform app id (the AES key is it left-padded with '0' to 16 bytes)")
	mode := fs.String("mode", "ecb", "ecb or cbc")
	encoding := fs.String("encoding", "base64", "base64 or hex")
	iv := fs.String("iv", "", "CBC initialisation vector (16 bytes; default: the key)")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if *appID == "" || fs.NArg() != 1 {
		return usagef("usage: scanagent encrypt --app-id ID VALUE|-  (with -, VALUE is read from standard input, out of the shell's history and the process list)")
	}
	ci, err := crypto.New(*appID, crypto.Options{Mode: *mode, Encoding: *encoding, IV: *iv})
	if err != nil {
		return usagef("encrypt: %v", err)
	}
	value := fs.Arg(0)
	if value == "-" {
		in := e.stdin
		if in == nil {
			in = os.Stdin
		}
		line, err := bufio.NewReader(io.LimitReader(in, 64<<10)).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("encrypt: reading standard input: %w", err)
		}
		value = strings.TrimRight(line, "\r\n")
		if value == "" {
			return usagef("encrypt: standard input is empty; give the value on its first line")
		}
	}
	out, err := ci.Encrypt(value)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, out)
	return nil
}
