#!/usr/bin/env bash
# Peak resident memory of `ichpipe run --segmenter threshold` on a 600-slice
# thin-slice study (512x512, 0.625 mm): the largest series ichpipe is meant to
# take in one piece. Prints the phantom and run wall times and GNU time's
# "Maximum resident set size" (kB and MiB).
#
# Usage: bench/peak_memory_600.sh [WORKDIR]   (default: a temporary folder, removed afterwards)
# Needs /usr/bin/time (Debian package "time"); run from the repository root with the venv active
# or with ICHPIPE=path/to/ichpipe.
set -euo pipefail

ICHPIPE=${ICHPIPE:-ichpipe}
WORK=${1:-}
if [[ -z "$WORK" ]]; then
    WORK=$(mktemp -d -t ichpipe-mem600-XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
if [[ ! -x /usr/bin/time ]]; then
    echo "peak_memory_600: /usr/bin/time is missing (apt-get install time)" >&2
    exit 2
fi

if [[ ! -f "$WORK/study/truth.json" ]]; then
    start=$(date +%s)
    "$ICHPIPE" phantom --out "$WORK/study" --overwrite --seed 600 --rows 512 --columns 512 --slices 600 \
        --slice-spacing 0.625 --volume-ml 30 >/dev/null
    echo "phantom: 600 x 512 x 512 written in $(( $(date +%s) - start )) s ($(du -sh "$WORK/study/DICOM" | cut -f1))"
fi

cat > "$WORK/config.yaml" <<YAML
store:
  path: $WORK/store.sqlite
YAML

rm -rf "$WORK/out"
/usr/bin/time -v "$ICHPIPE" run --study "$WORK/study" --out "$WORK/out" --segmenter threshold \
    --config "$WORK/config.yaml" --json >"$WORK/report.json" 2>"$WORK/time.txt" || {
    cat "$WORK/time.txt" >&2
    exit 1
}
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$WORK/time.txt")
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")
python3 - "$WORK/report.json" "$WORK/study/truth.json" <<PY
import json, sys
r = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))
print(f"run: {r['geometry']['n_slices']} slices, volume {r['hematoma']['volume_ml']:.2f} mL"
      f" (truth {t['hematoma']['volume_ml']:.2f} mL), stages {r['timings_s']}")
PY
echo "Maximum resident set size: ${rss_kb} kB ($(( rss_kb / 1024 )) MiB), wall ${wall}"
