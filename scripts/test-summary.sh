#!/usr/bin/env bash
# Prints, after a `cargo test` run, the totals over every test binary and each ignored test
# with the reason its `#[ignore = "..."]` gives, so a green run also says what did not run.
#   scripts/test-summary.sh LOG     (LOG: the captured stdout+stderr of `cargo test`)
set -euo pipefail

log="${1:?usage: scripts/test-summary.sh CARGO_TEST_LOG}"
[[ -r "$log" ]] || { echo "test summary: cannot read $log" >&2; exit 1; }

# `test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; ...`
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed;?$/)  passed  += $i
         if ($(i+1) ~ /^failed;?$/)  failed  += $i
         if ($(i+1) ~ /^ignored;?$/) ignored += $i
       }
       binaries++
     }
     END { printf "\ntest summary: %d passed, %d failed, %d ignored (%d test binaries and doc-test runs)\n",
                  passed, failed, ignored, binaries }' "$log"

# `test name ... ignored, REASON` (libtest prints the reason since Rust 1.61; none without one).
grep -E '^test .+ \.\.\. ignored' "$log" | awk '
  {
    # The name may hold spaces (doc tests: `path - (line 24)`); the first ` ... ignored` ends it.
    cut = index($0, " ... ignored")
    name = substr($0, 6, cut - 6)
    reason = substr($0, cut + length(" ... ignored"))
    sub(/^, /, "", reason)
    if (reason == "") reason = "(no reason given)"
    if (!(reason in count)) order[++reasons] = reason
    count[reason]++
    names[reason] = names[reason] "\n    " name
  }
  END {
    if (reasons > 0) print "ignored tests, by reason:"
    for (i = 1; i <= reasons; i++) printf "  %d x %s%s\n", count[order[i]], order[i], names[order[i]]
  }' || true
