//go:build !faultinject

package durable

// point marks a durable step. Release builds carry no fault injection: the
// call compiles to nothing.
func point(op, path string) {}

// FaultInjection reports whether this binary was built with fault points.
const FaultInjection = false
