package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// A skipped test is summarized with its reason; a failing test's output is
// shown; a forbidden skip is flagged.
func TestReport(t *testing.T) {
	stream := `{"Action":"run","Package":"p/a","Test":"TestX"}
{"Action":"output","Package":"p/a","Test":"TestX","Output":"=== RUN   TestX\n"}
{"Action":"output","Package":"p/a","Test":"TestX","Output":"    x_test.go:12: s6 is not installed: apt-get install s6 execline\n"}
{"Action":"output","Package":"p/a","Test":"TestX","Output":"--- SKIP: TestX (0.00s)\n"}
{"Action":"skip","Package":"p/a","Test":"TestX"}
{"Action":"output","Package":"p/a","Test":"TestY","Output":"    y_test.go:3: boom\n"}
{"Action":"fail","Package":"p/a","Test":"TestY"}
{"Action":"output","Package":"p/a","Test":"TestZ","Output":"    z_test.go:3: chatter of a passing test\n"}
{"Action":"pass","Package":"p/a","Test":"TestZ"}
{"Action":"output","Package":"p/b","Test":"TestScripts/s6","Output":"    cmd.go:380: s6 is not installed: apt-get install s6 execline\n"}
{"Action":"output","Package":"p/b","Test":"TestScripts/s6","Output":"    testscript.go:609: WORK=$WORK\n"}
{"Action":"skip","Package":"p/b","Test":"TestScripts/s6"}
{"Action":"output","Package":"p/b","Output":"ok  \tp/b\t0.1s\n"}
`
	var out bytes.Buffer
	skips := report(strings.NewReader(stream), &out, nil)
	if !strings.Contains(out.String(), "boom") || strings.Contains(out.String(), "chatter") {
		t.Errorf("output:\n%s", out.String())
	}
	// With -show, a passing test's output is printed too.
	var shown bytes.Buffer
	report(strings.NewReader(stream), &shown, regexp.MustCompile("^TestZ$"))
	if !strings.Contains(shown.String(), "z_test.go:3: chatter of a passing test") {
		t.Errorf("output with -show TestZ:\n%s", shown.String())
	}
	if !strings.Contains(out.String(), "ok  \tp/b") {
		t.Errorf("package line missing:\n%s", out.String())
	}
	out.Reset()
	bad := printSkips(&out, skips, regexp.MustCompile("s6"))
	want := "FORBIDDEN SKIP: 2 test(s): s6 is not installed: apt-get install s6 execline (a.TestX, b.TestScripts/s6)\n"
	if !bad || out.String() != want {
		t.Errorf("skips %v:\n%q\nwant\n%q", bad, out.String(), want)
	}
	out.Reset()
	if printSkips(&out, skips, nil) || !strings.HasPrefix(out.String(), "skipped: 2 test(s): ") {
		t.Errorf("skips without -fail-skips: %q", out.String())
	}
}
