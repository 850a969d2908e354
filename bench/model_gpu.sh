#!/usr/bin/env bash
# Quality sweep on the GPU device machine (see bench/MODEL.md). Trains several configs in
# parallel with a wall-time budget each, keeps the best checkpoint per dataset by its
# validation metric, then registers the best games model and times its scoring paths.
#   DATA=.bench-data OUT=/tmp/out BUDGET=380 bash bench/model_gpu.sh
set -u
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
export DATA=${DATA:-.bench-data}; OUT=${OUT:-/tmp/out}; BUDGET=${BUDGET:-380}
mkdir -p "$OUT" /tmp/ckpt
python3 -c "import onnxruntime as o, torch; print('ort', o.__version__, o.get_available_providers(), 'torch', torch.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee "$OUT/logs.txt"
run() { tag=$1; shift
  timeout $((BUDGET + 150)) python3 bench/model_quality.py "$@" --device cuda --data-dir "$DATA" --quiet --tag "$tag" \
    --time-budget "$BUDGET" --save "/tmp/ckpt/$tag.pt" --out "$OUT/quality.jsonl" > "/tmp/ckpt/$tag.log" 2>&1; }
run D1 diginetica &
run D2 diginetica --set dropout=0.5 &
run D3 diginetica --set normalize=false --set dropout=0.5 &
run D4 diginetica --set dropout=0.4 --set temperature=0.05 --set max_len=30 &
run G1 games &
run G2 games --set normalize=true --set temperature=0.1 --set hidden=64 &
run G3 games --set dropout=0.3 &
wait
for f in /tmp/ckpt/*.log; do echo "== $f"; tail -3 "$f"; done >> "$OUT/logs.txt"
python3 - "$OUT" <<'PY' >> "$OUT/logs.txt" 2>&1
import json, shutil, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/quality.jsonl")]
for ds, key in (("diginetica", "mrr@20"), ("games", "ndcg@10")):
    cand = [r for r in rows if r["dataset"] == ds]
    if cand:
        best = max(cand, key=lambda r: r["valid"].get(key, 0))
        print("best", ds, best["tag"], best["test"])
        shutil.copy(f"/tmp/ckpt/{best['tag']}.pt", f"/tmp/ckpt/best-{ds}.pt")
PY
split -b 15m -d /tmp/ckpt/best-diginetica.pt "$OUT/best-diginetica.pt.part" 2>/dev/null
cp /tmp/ckpt/best-games.pt "$OUT/best-games.pt" 2>/dev/null
python3 - <<'PY' >> "$OUT/logs.txt" 2>&1
from pathlib import Path
from models.data import load_sasrec
from models.publish import load_checkpoint, publish
from models.registry import Registry
data = load_sasrec(Path(__import__("os").environ.get("DATA", ".bench-data")) / "games" / "Video.txt")
model = load_checkpoint(Path("/tmp/ckpt/best-games.pt"))
mv = publish(model, Registry(Path("/tmp/reg")), data.item_ids, data.description, eval_set=data.test,
             protocol="sampled100", quality_limit=3000, promote=True)
print("published", mv.version)
PY
for t in 2 16; do python3 bench/model_scoring.py --registry /tmp/reg --threads $t --seconds 3 >> "$OUT/scoring.jsonl" 2>> "$OUT/logs.txt"; done
cp /tmp/reg/*/manifest.json "$OUT/games-manifest.json" 2>/dev/null
ls -la "$OUT"
