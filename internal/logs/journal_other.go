//go:build !unix

package logs

import "os"

// UnderJournal is false: there is no journald here.
func UnderJournal(*os.File) bool { return false }
