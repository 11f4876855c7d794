//go:build !unix

package recorder

import "os"

func lockFile(*os.File) error   { return nil }
func unlockFile(*os.File) error { return nil }

func tryLock(*os.File) bool { return true }
