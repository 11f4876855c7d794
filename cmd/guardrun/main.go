// Command guardrun puts a guard between an AI coding agent and the
// databases it touches. See the README.
package main

import (
	"os"

	"github.com/guardrun/guardrun/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
