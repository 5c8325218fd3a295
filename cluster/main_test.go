package cluster_test

import (
	"testing"

	"github.com/treeshift/treeshift/internal/faulttest"
)

func TestMain(m *testing.M) { faulttest.Main(afterAll{m}) }

// afterAll stops the etcd cluster the tests shared, once they have run.
type afterAll struct{ m *testing.M }

func (a afterAll) Run() int {
	code := a.m.Run()
	if sharedStop != nil {
		sharedStop()
	}
	return code
}
