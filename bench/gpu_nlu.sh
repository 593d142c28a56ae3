#!/bin/bash
# NLU benchmark training on a GPU machine (full epochs), for sessions that are lent one.
#
#   bench/gpu_nlu.sh prepare   # here: a 16 MB copy of the base encoder (bench/trim_e5.py) and
#                              # the four datasets into .gpu/ (git-ignored; add /.gpu/ to
#                              # .git/info/exclude), which the device tool carries
#   bench/gpu_nlu.sh run       # there: trains the four benchmarks in parallel, tars the reports
#                              # into $OUT/results.tgz
set -u
case "${1:-}" in
prepare)
    mkdir -p .gpu/datasets/banking77 .gpu/datasets/clinc150 .gpu/datasets/bitext_customer_support
    .venv/bin/python bench/trim_e5.py .gpu/e5-trim.bin.gz
    src=${PARLEY_DATASETS:-../shared/datasets}
    cp "$src"/banking77/*.csv .gpu/datasets/banking77/
    cp "$src"/clinc150/data_full.json .gpu/datasets/clinc150/
    cp -r "$src"/snips .gpu/datasets/
    cp "$src"/bitext_customer_support/*6480rows.csv .gpu/datasets/bitext_customer_support/
    du -sh .gpu
    ;;
run)
    nvidia-smi --query-gpu=name,memory.used --format=csv
    gunzip -c .gpu/e5-trim.bin.gz > /tmp/e5.bin
    export PARLEY_E5_BIN=/tmp/e5.bin PARLEY_DATASETS=$PWD/.gpu/datasets PYTHONUNBUFFERED=1 \
        HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2
    mkdir -p /tmp/res
    B="timeout ${LIMIT:-470} python3 bench/nlu_benchmark.py --cache /tmp/base --out /tmp/res --preset full --threads 2"
    $B --dataset banking77 --epochs 10 > /tmp/res/banking77.log 2>&1 &
    $B --dataset clinc150 --epochs 10 > /tmp/res/clinc150.log 2>&1 &
    $B --dataset snips --epochs 5 > /tmp/res/snips.log 2>&1 &
    $B --dataset bitext --epochs 10 > /tmp/res/bitext.log 2>&1 &
    wait
    for f in /tmp/res/*.log; do echo "== $f"; grep -v -i warn "$f" | tail -2; done
    (cd /tmp/res && tar czf "$OUT/results.tgz" ./*.json ./*.png ./*.log)
    ;;
*)
    echo "usage: $0 prepare|run" >&2; exit 2
    ;;
esac
