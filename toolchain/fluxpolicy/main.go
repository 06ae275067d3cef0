// Command fluxpolicy answers image-tag-policy questions the way Flux's image-reflector-controller does, by
// calling the two libraries that controller pins (Masterminds/semver/v3 v3.5.0, fluxcd/pkg/version v0.16.0).
// The tests compare istio_canary/release/semverrange.py and istio_canary/release/tagpolicy.py with it (tests/unit/test_flux_cases.py,
// tests/integration/test_flux_reference.py, bench/bench_flux_agreement.py).
//
// Protocol: one JSON object per line on stdin, one JSON answer per line on stdout, in order.
//
//	{"op":"version","text":"v1.2.03"}            -> {"ok":true,"major":1,"minor":2,"patch":3,"pre":"","metadata":"","original":"v1.2.03"}
//	{"op":"constraint","range":">=1.0 || 2.1.0-rc.1"} -> {"ok":true} | {"ok":false,"error":"..."}
//	{"op":"check","range":"...","version":"..."}  -> {"ok":true,"result":true}; a range or version that does not
//	                                                  parse: {"ok":false,"what":"range"|"version","error":"..."}
//	{"op":"compare","a":"...","b":"..."}           -> {"ok":true,"result":-1|0|1} (both read with ParseVersion)
//	{"op":"parsefloat","text":"1e5"}               -> {"ok":true,"value":"100000"} (strconv.FormatFloat 'g', -1)
//	{"op":"filter","filter":"<Go regexp>","extract":"<template>","tags":[...]}
//	                                               -> {"ok":true,"items":[{"value":"...","tag":"..."},...]} (Flux's
//	                                                  value -> tag map, values in the order they first appeared)
//	{"op":"groups","filter":"<Go regexp>"}        -> {"ok":true,"count":2,"names":["ts"]} (capture groups, names)
//	{"op":"latest","policy":"semver:<range>"|"numerical:asc"|"alphabetical:desc",
//	 "filter":"<Go regexp>","extract":"<template>","tags":[...]}
//	                                               -> {"ok":true,"tag":"..."} | {"ok":false,"kind":K,"error":"..."}
//	   K = "invalid" (the policy or the filter is refused when the ImagePolicy is read),
//	       "empty"   (no tag to choose from, or none in range: Flux reports no latest tag),
//	       "fail"    (the policy itself fails on the tags: numerical over a value that is not a number).
//
// A line that is not a request gets {"ok":false,"error":"bad request: ..."}; the process ends at EOF.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/fluxcd/pkg/version"
)

type request struct {
	Op      string   `json:"op"`
	Text    string   `json:"text"`
	Range   string   `json:"range"`
	Version string   `json:"version"`
	A       string   `json:"a"`
	B       string   `json:"b"`
	Policy  string   `json:"policy"`
	Filter  string   `json:"filter"`
	Extract string   `json:"extract"`
	Tags    []string `json:"tags"`
}

type answer map[string]any

func refused(err error) answer { return answer{"ok": false, "error": err.Error()} }

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for {
		line, err := in.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var req request
			var ans answer
			if jerr := json.Unmarshal(line, &req); jerr != nil {
				ans = refused(fmt.Errorf("bad request: %w", jerr))
			} else {
				ans = handle(req)
			}
			if eerr := enc.Encode(ans); eerr != nil {
				fmt.Fprintln(os.Stderr, "fluxpolicy: cannot encode an answer:", eerr)
				os.Exit(1)
			}
			// One answer per request line, visible at once: the caller waits for it.
			if ferr := out.Flush(); ferr != nil {
				os.Exit(1)
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fluxpolicy: reading stdin:", err)
			os.Exit(1)
		}
	}
}

func handle(req request) answer {
	switch req.Op {
	case "version":
		v, err := version.ParseVersion(req.Text)
		if err != nil {
			return refused(err)
		}
		return answer{
			"ok": true, "major": v.Major(), "minor": v.Minor(), "patch": v.Patch(),
			"pre": v.Prerelease(), "metadata": v.Metadata(), "original": v.Original(),
		}
	case "constraint":
		if _, err := semver.NewConstraint(req.Range); err != nil {
			return refused(err)
		}
		return answer{"ok": true}
	case "check":
		c, err := semver.NewConstraint(req.Range)
		if err != nil {
			return answer{"ok": false, "what": "range", "error": err.Error()}
		}
		v, err := version.ParseVersion(req.Version)
		if err != nil {
			return answer{"ok": false, "what": "version", "error": err.Error()}
		}
		return answer{"ok": true, "result": c.Check(v)}
	case "compare":
		a, err := version.ParseVersion(req.A)
		if err != nil {
			return answer{"ok": false, "what": "a", "error": err.Error()}
		}
		b, err := version.ParseVersion(req.B)
		if err != nil {
			return answer{"ok": false, "what": "b", "error": err.Error()}
		}
		return answer{"ok": true, "result": a.Compare(b)}
	case "parsefloat":
		f, err := strconv.ParseFloat(req.Text, 64)
		if err != nil {
			return refused(err)
		}
		return answer{"ok": true, "value": strconv.FormatFloat(f, 'g', -1, 64)}
	case "filter":
		re, err := regexp.Compile(req.Filter)
		if err != nil {
			return refused(err)
		}
		keys, original := filterTags(re, req.Extract, req.Tags)
		items := make([]map[string]string, 0, len(keys))
		for _, k := range keys {
			items = append(items, map[string]string{"value": k, "tag": original[k]})
		}
		return answer{"ok": true, "items": items}
	case "groups":
		re, err := regexp.Compile(req.Filter)
		if err != nil {
			return refused(err)
		}
		names := []string{}
		for _, name := range re.SubexpNames() {
			if name != "" {
				names = append(names, name)
			}
		}
		return answer{"ok": true, "count": re.NumSubexp(), "names": names}
	case "latest":
		tag, kind, err := latest(req)
		if err != nil {
			return answer{"ok": false, "kind": kind, "error": err.Error()}
		}
		return answer{"ok": true, "tag": tag}
	}
	return refused(fmt.Errorf("bad request: unknown op %q", req.Op))
}

// chooser picks one value out of a non-empty list, or fails the way the Flux policy does.
type chooser func(values []string) (string, string, error)

var errNothing = errors.New("no tag in range")

// policyFor reads "<kind>:<argument>" as the ImagePolicy's spec.policy would say it: the order is
// upper-cased before it is checked (Flux does so), an empty order is ascending.
func policyFor(spec string) (chooser, error) {
	kind, arg, found := strings.Cut(spec, ":")
	if !found {
		return nil, fmt.Errorf("policy %q: want semver:<range>, numerical:<order> or alphabetical:<order>", spec)
	}
	switch kind {
	case "semver":
		c, err := semver.NewConstraint(arg)
		if err != nil {
			return nil, err
		}
		return func(values []string) (string, string, error) { return newestInRange(c, values) }, nil
	case "numerical", "alphabetical":
		order := strings.ToUpper(arg)
		if order == "" {
			order = "ASC"
		}
		if order != "ASC" && order != "DESC" {
			return nil, fmt.Errorf("order %q: want asc or desc", arg)
		}
		if kind == "numerical" {
			return func(values []string) (string, string, error) { return byNumber(order, values) }, nil
		}
		return func(values []string) (string, string, error) { return byString(order, values) }, nil
	}
	return nil, fmt.Errorf("policy kind %q: want semver, numerical or alphabetical", kind)
}

// newestInRange: every value ParseVersion reads and the range accepts; the highest by precedence wins, and of
// equal ones the first seen (only a strictly greater version replaces the one held). The answer is the
// value as written (Original), v prefix and leading zeros included.
func newestInRange(c *semver.Constraints, values []string) (string, string, error) {
	var best *semver.Version
	for _, s := range values {
		v, err := version.ParseVersion(s)
		if err != nil || !c.Check(v) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best = v
		}
	}
	if best == nil {
		return "", "empty", errNothing
	}
	return best.Original(), "", nil
}

// byNumber: every value must be a Go float (strconv.ParseFloat, 64 bits), or the whole policy fails. The
// first value starts; a later one replaces it unless it is strictly worse, so of equal numbers the last wins.
func byNumber(order string, values []string) (string, string, error) {
	var held string
	var heldNum float64
	for i, s := range values {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return "", "fail", fmt.Errorf("value %q is not a number", s)
		}
		if i > 0 && ((order == "ASC" && n < heldNum) || (order == "DESC" && n > heldNum)) {
			continue
		}
		held, heldNum = s, n
	}
	return held, "", nil
}

// byString: Go's byte-wise string order; ascending picks the greatest, descending the least.
func byString(order string, values []string) (string, string, error) {
	sorted := append([]string(nil), values...)
	sort.Strings(sorted)
	if order == "DESC" {
		return sorted[0], "", nil
	}
	return sorted[len(sorted)-1], "", nil
}

// latest does what the controller does for one ImagePolicy over one tag list.
func latest(req request) (string, string, error) {
	choose, err := policyFor(req.Policy)
	if err != nil {
		return "", "invalid", err
	}
	// No filter: the policy sees the tags as listed.
	if req.Filter == "" && req.Extract == "" {
		if len(req.Tags) == 0 {
			return "", "empty", errors.New("no tags")
		}
		return choose(req.Tags)
	}
	re, err := regexp.Compile(req.Filter)
	if err != nil {
		return "", "invalid", fmt.Errorf("filter: %w", err)
	}
	keys, original := filterTags(re, req.Extract, req.Tags)
	if len(keys) == 0 {
		return "", "empty", errors.New("no tag matches the filter")
	}
	value, kind, err := choose(keys)
	if err != nil {
		return "", kind, err
	}
	return original[value], "", nil
}

// filterTags maps each matching tag's value (the tag, or the extract template expanded over the match) to the tag;
// a later tag with the same value takes the place of an earlier one. Flux then hands the map's keys to the policy
// in Go's map order, which is random; here they come in the order their value first appeared in the input, so
// that ties (two values the policy ranks equal) have one answer to compare with.
func filterTags(re *regexp.Regexp, extract string, tags []string) ([]string, map[string]string) {
	original := map[string]string{}
	var keys []string
	for _, tag := range tags {
		m := re.FindStringSubmatchIndex(tag)
		if len(m) == 0 {
			continue
		}
		value := tag
		if extract != "" {
			value = string(re.ExpandString(nil, extract, tag, m))
		}
		if _, seen := original[value]; !seen {
			keys = append(keys, value)
		}
		original[value] = tag
	}
	return keys, original
}
