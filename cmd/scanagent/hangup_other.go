//go:build !unix

package main

// onHangup does nothing: there is no SIGHUP here.
func onHangup(func()) (stop func()) { return func() {} }
