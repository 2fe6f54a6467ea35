package config

import (
	"errors"
	"testing"
)

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Path: "c.toml", Line: 3, Col: 5, Key: "reader[1].baud", Msg: "is 0"}, "c.toml:3:5: reader[1].baud: is 0"},
		{Problem{Path: "c.toml", Line: 3, Key: "[agent] log_level", Msg: "bad"}, "c.toml:3: [agent] log_level: bad"},
		{Problem{Path: "c.toml", Key: "[platform] app_id", Msg: "is empty"}, "c.toml: [platform] app_id: is empty"},
		{Problem{Path: "c.toml", Line: 1, Col: 7, Msg: "syntax"}, "c.toml:1:7: syntax"},
		{Problem{Key: "k", Msg: "m"}, "k: m"},
		{Problem{Line: 2, Col: 1, Msg: "m"}, "2:1: m"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("Error(): got %q, want %q", got, tt.want)
		}
	}
}

func TestProblemsError(t *testing.T) {
	var err error = Problems{{Path: "a", Line: 1, Col: 1, Msg: "x"}, {Path: "a", Key: "k", Msg: "y"}}
	if got, want := err.Error(), "a:1:1: x\na: k: y"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 {
		t.Errorf("errors.As: got %v, want 2 problems", ps)
	}
}

func TestSortByPosition(t *testing.T) {
	ps := Problems{{Msg: "a"}, {Line: 5, Msg: "b"}, {Line: 2, Col: 3, Msg: "c"}, {Msg: "d"}, {Line: 2, Col: 1, Msg: "e"}}
	ps.sortByPosition()
	var got string
	for _, p := range ps {
		got += p.Msg
	}
	if want := "ecbad"; got != want {
		t.Errorf("got order %q, want %q", got, want)
	}
}
