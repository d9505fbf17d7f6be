#!/bin/bash
# Do the quality flags catch the wrong volumes? `ichpipe evaluate --flags` over every phantom set of
# MODEL_CARD.md ("Do the flags catch the wrong volumes?"); each set is made first with the
# `ichpipe train data` command the card gives for it (generated/SET/manifest.csv).
#
# usage: bench/flag_census.sh OUT [evaluate options...]
#   bench/flag_census.sh census-default --checkpoint models/checkpoints/ichpipe-default.pt --label default
#   bench/flag_census.sh census-threshold --segmenter threshold
# Writes OUT/SET/{cases.csv,summary.csv,table.md} and prints each set's flags table; sets not
# generated are named and skipped. SETS="a b" runs only those sets.
set -euo pipefail
out=${1:?usage: bench/flag_census.sh OUT [evaluate options...]}
shift
sets=${SETS:-"eval-v5 eval-v6 eval-v7 eval-v8 sel-v1 sel-sub xa-sel xa-eval-v2 sdh-sel sah-eval thin-eval-100 noisy-5mm blend-eval"}
ichpipe=${ICHPIPE:-.venv/bin/ichpipe}
mkdir -p "$out"
for s in $sets; do
  manifest=generated/$s/manifest.csv
  if [ ! -f "$manifest" ]; then
    echo "$s: $manifest not found (make it with the card's command); skipped" >&2
    continue
  fi
  "$ichpipe" evaluate --data "$manifest" --flags --out "$out/$s" "$@" > "$out/$s.log" 2>&1
  echo "== $s"
  sed -n '/^| Model | cases/,/^$/p' "$out/$s/table.md"
  grep '^- ' "$out/$s/table.md" || true
done
