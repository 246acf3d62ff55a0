#!/usr/bin/env bash
# vitslim predict end to end on the shipped Fashion-MNIST model: CSV rows in input order with the
# top-k classes, identical over 1 and 2 MPI ranks and any batch size; top-1 agrees with eval; the
# features times the head give the logits; a folder of PNG files (with a broken one) gives the
# split's logits exactly and skips (or under fail, refuses) the broken file; class names; --bf16
# in predict, entropy and search stays close to float32. Nothing is written on refusal.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
fail() { echo "FAIL: $*"; exit 1; }
SHIPPED="$VITSLIM_SCRIPTS/../pretrained/vit_fmnist.safetensors"
P=(predict --weights "$SHIPPED" --threads 1 --quiet)

"$BIN" "${P[@]}" --limit 300 --batch-size 64 --out one.csv --save-logits one.st --save-features one_f.st
"$MPIEXEC" -np 2 "$BIN" "${P[@]}" --limit 300 --batch-size 32 --out two.csv --save-logits two.st >/dev/null
cmp one.csv two.csv || fail "2 ranks wrote another CSV"
"$BIN" eval --weights "$SHIPPED" --eval-images 300 --threads 1 --quiet --json eval.json >/dev/null
"$PY" - "$SHIPPED" <<'EOF'
import csv, json, sys
import numpy as np
from safetensors.numpy import load_file
one, two, feats = load_file("one.st"), load_file("two.st"), load_file("one_f.st")
assert np.array_equal(one["logits"], two["logits"]) and list(one["index"]) == list(range(300)), "rank order"
rows = list(csv.DictReader(open("one.csv")))
assert len(rows) == 300 and rows[7]["file"] == "fashion-mnist test#7" and "class_5" in rows[0], rows[0]
assert all(int(r["class_1"]) == int(np.argmax(l)) for r, l in zip(rows, one["logits"]))
p = np.exp(one["logits"] - one["logits"].max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
assert abs(float(rows[3]["prob_1"]) - p[3].max()) < 1e-5
hits = sum(r["label"] == r["class_1"] for r in rows)
ev = json.load(open("eval.json"))
assert hits == ev["top1_correct"], (hits, ev["top1_correct"])
w = load_file(sys.argv[1])
again = feats["features"] @ w["head.weight"].T + w["head.bias"]
assert feats["features"].shape == (300, 64) and np.abs(again - one["logits"]).max() < 1e-4
print(f"ok   predict: 300 rows in order on 1 and 2 ranks, top-1 {hits}/300 = eval's, features x head = logits")
EOF

# A folder of the first 40 test images as PNG (20 in a subfolder) and one broken file.
"$PY" - <<'EOF'
import gzip, os
import numpy as np
from PIL import Image
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
os.makedirs("pngs/more", exist_ok=True)
for i in range(40):
    Image.fromarray(images[i]).save(f"pngs/{'more/' if i >= 20 else ''}img{i:03d}.png")
open("pngs/broken.png", "wb").write(b"\x89PNG\r\n\x1a\nbroken")
EOF
FILES=(--images pngs --crop-pct 1 --mean 0.286 --std 0.353)
"$BIN" "${P[@]}" "${FILES[@]}" --out files.csv --save-logits files.st --topk 3 2>warn.txt
grep -q "broken.png" warn.txt || fail "the broken file was not named"
"$PY" - <<'EOF'
import csv
import numpy as np
from safetensors.numpy import load_file
files, split = load_file("files.st"), load_file("one.st")
assert np.array_equal(files["logits"], split["logits"][:40]), "PNG files differ from the split"
rows = list(csv.DictReader(open("files.csv")))
assert [r["file"] for r in rows[:2]] == ["pngs/img000.png", "pngs/img001.png"] and rows[20]["file"] == "pngs/more/img020.png"
assert len(rows) == 40 and rows[0]["label"] == "" and "class_3" in rows[0] and "class_4" not in rows[0]
print("ok   image files: the split's logits exactly, in sorted order, the broken file skipped")
EOF
printf 'T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot\n' >names.txt
# A list line is a name as written (issue 33 item 13): "#hash.png" is a file, not a comment.
cp pngs/img000.png 'pngs/#hash.png'
printf '#hash.png\nimg000.png\n\nimg001.png\n' >pngs/list.txt
"$BIN" "${P[@]}" --image-list pngs/list.txt --crop-pct 1 --mean 0.286 --std 0.353 --class-index names.txt --out named.csv
[[ $(sed -n 3p named.csv | cut -d, -f1,3) == "pngs/img000.png,Ankle boot" ]] || { cat named.csv; fail "class names"; }
[[ $(sed -n 2p named.csv | cut -d, -f1,3) == "pngs/#hash.png,Ankle boot" && $(wc -l <named.csv) -eq 4 ]] ||
  { cat named.csv; fail "a name starting with # was dropped"; }
echo "ok   --image-list (names as written, #hash.png kept) and --class-index: $(sed -n 3p named.csv | cut -d, -f1-4)"

# Refusals: nothing written.
bad() {
  local want="$1"; shift
  local rc=0
  "$BIN" "${P[@]}" "$@" 2>err.txt >/dev/null || rc=$?
  [[ $rc -ne 0 ]] && grep -qF -- "$want" err.txt && [[ ! -e bad.csv ]] || { cat err.txt; fail "$want"; }
  echo "ok   refused: $(grep error err.txt)"
}
bad "broken.png: truncated PNG header (--bad-images fail)" "${FILES[@]}" --bad-images fail --out bad.csv
bad "the model takes 1 channel(s) and --mean/--std give 3 values" --images pngs --out bad.csv
bad "--images /no/such: no such file or folder" --images /no/such --out bad.csv
bad "--out one.csv: exists; pass --force" --limit 8 --out one.csv
head -3 names.txt >three.txt
bad "--class-index three.txt names 3 classes; the model has 10" --class-index three.txt --limit 8 --out bad.csv

# --bf16: predictions, entropy and the NOSE selection stay close to float32.
"$BIN" "${P[@]}" --limit 300 --bf16 --out bf16.csv
"$PY" -c "
import csv
a, b = list(csv.DictReader(open('one.csv'))), list(csv.DictReader(open('bf16.csv')))
same = sum(x['class_1'] == y['class_1'] for x, y in zip(a, b))
assert same >= 297, same
print(f'ok   predict --bf16: the same top-1 class for {same}/300 images')"
for p in fp32 bf16; do
  flag=(); [[ $p == bf16 ]] && flag=(--bf16)
  "$BIN" entropy --weights "$SHIPPED" --calib-images 256 --threads 1 --quiet --out e_$p.h5 --json e_$p.json "${flag[@]}" >/dev/null
  "$BIN" search --weights "$SHIPPED" --calib-images 256 --threads 1 --quiet --out s_$p.h5 --json s_$p.json "${flag[@]}" >/dev/null
done
"$PY" - <<'EOF'
import json
e = [json.load(open(f"e_{p}.json")) for p in ("fp32", "bf16")]
s = [json.load(open(f"s_{p}.json")) for p in ("fp32", "bf16")]
a = [b["attn_entropy"] for b in e[0]["blocks"]]
b = [b["attn_entropy"] for b in e[1]["blocks"]]
assert max(abs(x - y) / abs(x) for x, y in zip(a, b)) < 0.01, (a, b)
sel = [[x["layers"] for x in r["selections"]] for r in s]
assert sel[0] == sel[1], sel
print("ok   entropy --bf16 within 1% of float32; search --bf16 selects", sel[1])
EOF
