#!/usr/bin/env bash
# Second GPU sweep (Diginetica only; see bench/MODEL.md): dropout, width, temperature and a
# per-epoch learning-rate decay, plus two runs on all training sessions (no validation hold-out)
# for a fixed 12 epochs. Brings back the checkpoint chosen by validation (its full-data twin
# where there is one) and a PyTorch-CUDA timing of the scoring forward.
#   DATA=.bench-data OUT=/tmp/out BUDGET=330 bash bench/model_gpu2.sh
set -u
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
export DATA=${DATA:-.bench-data}; OUT=${OUT:-/tmp/out}; BUDGET=${BUDGET:-330}
mkdir -p "$OUT" /tmp/ckpt
run() { tag=$1; shift
  timeout $((BUDGET + 150)) python3 bench/model_quality.py diginetica "$@" --device cuda --data-dir "$DATA" --quiet \
    --tag "$tag" --time-budget "$BUDGET" --save "/tmp/ckpt/$tag.pt" --out "$OUT/quality.jsonl" > "/tmp/ckpt/$tag.log" 2>&1; }
run E1 --set dropout=0.2 &
run E2 --set hidden=256 &
run E3 --set lr_decay=0.8 &
run E4 --set lr_decay=0.8 --set dropout=0.2 &
run E5 --set lr_decay=0.8 --set hidden=256 &
run E6 --set lr_decay=0.8 --set temperature=0.1 &
run F1 --set lr_decay=0.8 --set epochs=12 --valid-fraction 0 &
run F2 --set lr_decay=0.8 --set hidden=256 --set epochs=12 --valid-fraction 0 &
wait
for f in /tmp/ckpt/*.log; do echo "== $f"; tail -2 "$f"; done > "$OUT/logs.txt"
python3 - "$OUT" <<'PY' >> "$OUT/logs.txt" 2>&1
import json, shutil, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/quality.jsonl")]
cand = [r for r in rows if r["tag"].startswith("E")]
best = max(cand, key=lambda r: r["valid"].get("mrr@20", 0))
tag = {"E3": "F1", "E5": "F2"}.get(best["tag"], best["tag"])
print("best by validation", best["tag"], "-> bringing back", tag)
shutil.copy(f"/tmp/ckpt/{tag}.pt", "/tmp/ckpt/chosen.pt")
open(f"{out}/chosen.txt", "w").write(tag + "\n")
PY
split -b 15m -d /tmp/ckpt/chosen.pt "$OUT/chosen.pt.part"
python3 - <<'PY' > "$OUT/torch_cuda.json" 2>> "$OUT/logs.txt"
# PyTorch CUDA timing of SASRec.score (batch 256 x 100 candidates): a GPU reference point,
# not the onnxruntime CUDA provider (this machine's onnxruntime has no CUDA provider).
import json, time, torch
from pathlib import Path
from models.publish import load_checkpoint
m = load_checkpoint(Path("/tmp/ckpt/chosen.pt")).cuda()
n, T = m.config.num_items, m.config.max_len
rows = []
for dtype in (torch.float32, torch.float16):
    mm = m.to(dtype)
    h = torch.randint(1, n + 1, (256, T), device="cuda"); c = torch.randint(1, n + 1, (256, 100), device="cuda")
    with torch.no_grad():
        for _ in range(10): mm.score(h, c)
        torch.cuda.synchronize(); t = time.perf_counter(); k = 200
        for _ in range(k): mm.score(h, c).float().cpu()
        torch.cuda.synchronize(); per = (time.perf_counter() - t) / k
    rows.append({"dtype": str(dtype), "seconds_per_call": per, "device_seconds_per_1k_scores": per / 256 * 1000,
                 "gpu": torch.cuda.get_device_name(0), "max_len": T, "hidden": m.config.hidden})
print(json.dumps(rows))
PY
ls -la "$OUT"
