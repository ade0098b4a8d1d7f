package iam

import "strings"

// glob reports whether s matches pattern, where * matches any run of characters (":" and "/"
// included, as AWS matches Resource and Action) and ? matches one character. With fold,
// ASCII letters match regardless of case (actions); otherwise the match is exact (resources,
// StringLike). It allocates nothing and runs in O(len(pattern)·len(s)) at worst: on a
// mismatch it backtracks only to the last star, which is enough because a later star can
// absorb anything an earlier one could. A trailing star answers at once and ASCII skips
// rune decoding: "*" and "kinesis:*" are the commonest patterns, and the two halved
// BenchmarkDecide.
func glob[P, S ~string | ~[]byte](pattern P, s S, fold bool) bool {
	px, sx := 0, 0
	starPx, starSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				if px == len(pattern)-1 {
					return true // a trailing star takes the rest, whatever it is
				}
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx += runeLen(s, sx)
					continue
				}
			default:
				if sx < len(s) && (c == s[sx] || fold && lower(c) == lower(s[sx])) {
					px++
					sx++
					continue
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			starSx += runeLen(s, starSx)
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}

// runeLen is the length of the UTF-8 character that starts at s[i], by its lead byte
// (at most what is left of s).
func runeLen[S ~string | ~[]byte](s S, i int) int {
	n := 1
	switch c := s[i]; {
	case c >= 0xF0:
		n = 4
	case c >= 0xE0:
		n = 3
	case c >= 0xC0:
		n = 2
	}
	return min(n, len(s)-i)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// anyGlob reports whether s matches one of patterns.
func anyGlob(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if glob(p, s, fold) {
			return true
		}
	}
	return false
}

// arnLike is the ARN condition operators' match (ArnEquals and ArnLike alike): pattern and
// arn are split into their six colon-separated components (the last keeps any further
// colons) and each component is matched on its own, so a wildcard does not cross a colon
// before the resource part. An arn without six components matches nothing.
func arnLike(pattern, arn string) bool {
	for i := range 5 {
		pc, prest, ok1 := strings.Cut(pattern, ":")
		ac, arest, ok2 := strings.Cut(arn, ":")
		if !ok1 || !ok2 {
			return false
		}
		if i == 0 && (pc != "arn" || ac != "arn") || !glob(pc, ac, false) {
			return false
		}
		pattern, arn = prest, arest
	}
	return glob(pattern, arn, false)
}

// arnAccount is the account component of an ARN ("" if s is not an ARN).
func arnAccount(s string) string {
	if !strings.HasPrefix(s, "arn:") {
		return ""
	}
	for range 4 {
		_, rest, ok := strings.Cut(s, ":")
		if !ok {
			return ""
		}
		s = rest
	}
	acct, _, ok := strings.Cut(s, ":")
	if !ok {
		return ""
	}
	return acct
}
