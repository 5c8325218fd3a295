package cluster_test

import (
	"flag"
	"testing"

	"github.com/treeshift/treeshift/internal/faulttest"
)

func TestMain(m *testing.M) {
	// The etcd tests spend their time waiting — on leases to expire, on
	// agents to answer — more than on a CPU: unless -parallel says
	// otherwise, they run together rather than GOMAXPROCS at a time, and
	// the crash tests' processes use the CPUs meanwhile.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		flag.Set("test.parallel", "8")
	}
	faulttest.Main(afterAll{m})
}

// afterAll stops the etcd cluster the tests shared, once they have run.
type afterAll struct{ m *testing.M }

func (a afterAll) Run() int {
	code := a.m.Run()
	if sharedStop != nil {
		sharedStop()
	}
	return code
}
