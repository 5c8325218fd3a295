package cluster

import (
	"strings"
	"testing"
)

// A member that is down counts no votes: with m3 down, rolling m2 would
// leave the lead's vote and the quorum vote, 2 of 4; with m3 up it leaves
// 3 of 4. The refusal names the member down and why.
func TestQuorumCountsOnlyMembersUp(t *testing.T) {
	st := &State{QuorumVote: true, Stage: Postinstall, Lead: "m1", New: 3, Members: []Member{
		{ID: "m1", Votes: 1, Rolled: true}, {ID: "m2", Votes: 1}, {ID: "m3", Votes: 1},
	}}
	views := map[string]*View{
		"m1": {Up: true}, "m2": {Up: true},
		"m3": {Down: "member m3 is down: its agent has not reported for 12 s"},
	}
	up := map[string]bool{"m1": true, "m2": true, "m3": false}
	err := st.mayBegin([]string{"m2"}, up, views)
	if err == nil || !strings.Contains(err.Error(), "rolling m2 would leave 2 of 4 votes, no quorum") ||
		!strings.Contains(err.Error(), "member m3 is down: its agent has not reported for 12 s") {
		t.Fatalf("roll of m2 with m3 down: %v", err)
	}
	if err := st.mayBegin([]string{"m3"}, up, views); err == nil || !strings.Contains(err.Error(), "member m3 is down") || !strings.Contains(err.Error(), "it cannot be rolled") {
		t.Fatalf("roll of m3, down: %v", err)
	}
	up["m3"] = true
	if err := st.mayBegin([]string{"m2"}, up, views); err != nil {
		t.Fatalf("roll of m2 with every member up: %v", err)
	}
	// A member rolling (its task asked, not over) counts no votes either:
	// with m2 rolling, m3 may not begin.
	st.Members[1].Task = &Task{Action: ActUpdate, Stage: Roll, State: Running}
	if err := st.mayBegin([]string{"m3"}, up, views); err == nil || !strings.Contains(err.Error(), "rolling now: m2") {
		t.Fatalf("roll of m3 while m2 rolls: %v", err)
	}
	if may := st.mayRoll(up, st.rolling()); len(may) != 0 {
		t.Fatalf("may roll alongside m2: %v", may)
	}
}
