// Command callscribe is the Callscribe gateway. Subcommands:
//
//	callscribe serve [-sip ADDR] [-http ADDR] [-redis ADDR] [-model DIR] [-rtp-ports LO-HI]
//	callscribe transcribe [-model DIR] [-json] FILE.wav...
//	callscribe version
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
)

// version is set at link time (make build: git describe); a plain go build
// says devel.
var version = "devel"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: callscribe <command> [flags]

commands:
  serve [-sip ADDR] [-http ADDR] [-redis ADDR] [-model DIR] [-rtp-ports LO-HI]
                                                the gateway: SIP calls in, transcripts to Redis
  transcribe [-model DIR] [-json] FILE.wav...   recognize WAV files as concurrent streams
  version                                       this build: version, Go, platform
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveMain(args[1:], stdout, stderr)
	case "transcribe":
		return transcribeMain(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "callscribe %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "callscribe: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
}
