#!/usr/bin/env python3
"""The anchors of the retrieval benchmark: bm25s and sentence-transformers on a labelled set.

Usage: bench/.venv/bin/python bench/anchors.py DATASET_DIR MODEL_DIR

DATASET_DIR holds corpus.jsonl, queries.jsonl and qrels.tsv (as shared/bench-data/debian-faq-kb);
MODEL_DIR holds all-MiniLM-L6-v2 in sentence-transformers' layout (what scripts/fetch-model puts in
data/models/all-MiniLM-L6-v2), loaded offline. Prints ONE JSON object on stdout (progress goes to
stderr); `cargo bench -p mtdesk --bench knowledge` runs this script and sets our numbers beside it.

What is measured, so that both sides do the same work:
- Indexed / embedded text of a passage: title + ". " + text (text alone when the title is empty),
  as the dataset README says.
- Metrics: trec_eval semantics with binary relevance (ndcg_cut.10, recall.5, recall.10), averaged
  over the queries that have qrels; documents ranked as the retriever returns them.
- bm25s: Snowball English stemmer (PyStemmer) + bm25s's English stop words, default BM25 ("lucene",
  k1 = 1.5, b = 0.75), numpy backend. Queries/s on ONE thread (n_threads=1), top 10 for all queries,
  repeated until at least 1 s has passed, three ways: the headline in batch (tokenise all queries in
  one call, retrieve all in one call: bm25s's fastest way, and like ours it includes the analysis);
  retrieval alone (queries tokenised beforehand); and one query per call (as a service answers).
- MiniLM dense: exact cosine (normalised vectors, one matrix product) over the whole corpus.
  torch threads = 2. Passage encode: the FIRST 512 passages, batch size 32, one timed call (the
  remaining passages are encoded in a second call, untimed for throughput). Query encode: the first
  100 queries, one at a time, after 5 warm-up calls; median and p99 (nearest rank).
- RRF: reciprocal rank fusion of the two legs' top 100 (k = 60, equal weights), for reference.
"""

import json
import math
import os
import platform
import sys
import time

# Before numpy/torch start their pools: the lexical timings are single-threaded by construction, and
# the dense side sets its two threads explicitly below.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PASSAGE_ENCODE_N = 512
BATCH_SIZE = 32
QUERY_ENCODE_N = 100
TORCH_THREADS = 2
RRF_K = 60
RRF_DEPTH = 100
QPS_MIN_SECONDS = 1.0


def log(msg):
    print(f"anchors: {msg}", file=sys.stderr, flush=True)


def load(dir_):
    with open(os.path.join(dir_, "corpus.jsonl"), encoding="utf-8") as f:
        corpus = [json.loads(l) for l in f if l.strip()]
    with open(os.path.join(dir_, "queries.jsonl"), encoding="utf-8") as f:
        queries = [json.loads(l) for l in f if l.strip()]
    qrels = {}
    with open(os.path.join(dir_, "qrels.tsv"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            cols = [c.strip() for c in line.rstrip("\n").split("\t")]
            if len(cols) < 3:
                continue
            try:
                score = float(cols[2])
            except ValueError:
                if i == 0:
                    continue  # header
                raise
            if score > 0:
                qrels.setdefault(cols[0], set()).add(cols[1])
    for d in corpus:
        d.setdefault("id", d.get("_id"))
    for q in queries:
        q.setdefault("id", q.get("_id"))
    judged = [q for q in queries if q["id"] in qrels]
    return corpus, judged, qrels


def passage_text(d):
    title = (d.get("title") or "").strip()
    return f"{title}. {d['text']}" if title else d["text"]


def ndcg_at(ranked, relevant, k):
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def recall_at(ranked, relevant, k):
    return sum(1 for d in ranked[:k] if d in relevant) / len(relevant) if relevant else 0.0


def evaluate(rankings, judged, qrels):
    """rankings: one list of doc ids per judged query, best first."""
    n = len(judged)
    out = {"ndcg@10": 0.0, "recall@5": 0.0, "recall@10": 0.0}
    for q, ranked in zip(judged, rankings):
        rel = qrels[q["id"]]
        out["ndcg@10"] += ndcg_at(ranked, rel, 10)
        out["recall@5"] += recall_at(ranked, rel, 5)
        out["recall@10"] += recall_at(ranked, rel, 10)
    return {k: round(v / max(n, 1), 4) for k, v in out.items()}


def percentile(sorted_values, p):
    """Nearest rank, as crates/knowledge/src/metrics.rs."""
    if not sorted_values:
        return 0.0
    rank = math.ceil(p / 100.0 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def run_bm25s(corpus, judged, qrels):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids = [d["id"] for d in corpus]
    t = time.perf_counter()
    corpus_tokens = bm25s.tokenize(
        [passage_text(d) for d in corpus], stopwords="en", stemmer=stemmer, show_progress=False
    )
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)
    index_s = time.perf_counter() - t

    def search(text, k):
        # Strings, not ids: the query's own vocabulary is mapped onto the index's by retrieve().
        toks = bm25s.tokenize(
            [text], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        k = min(k, len(corpus))
        docs, scores = retriever.retrieve(toks, k=k, show_progress=False, n_threads=1)
        return [ids[int(i)] for i, s in zip(docs[0], scores[0]) if s > 0]

    rankings = [search(q["text"], 10) for q in judged]
    quality = evaluate(rankings, judged, qrels)
    deep = [search(q["text"], RRF_DEPTH) for q in judged]

    # Queries/s on one thread, top 10, all queries, repeated to >= 1 s. bm25s is fastest in batch, so
    # that is its headline figure: tokenise all queries in one call, retrieve all in one call
    # (n_threads=1). Also measured: retrieval alone (queries tokenised beforehand) and one query per
    # call (as a service answers).
    texts = [q["text"] for q in judged]
    k = min(10, len(corpus))

    def batch(tokenized=None):
        toks = tokenized or bm25s.tokenize(
            texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        return retriever.retrieve(toks, k=k, show_progress=False, n_threads=1)

    def timed(fn, per_round):
        fn()  # warm-up
        done, t = 0, time.perf_counter()
        while True:
            fn()
            done += per_round
            elapsed = time.perf_counter() - t
            if elapsed >= QPS_MIN_SECONDS:
                return done, elapsed

    pre = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
    done, elapsed = timed(batch, len(texts))
    r_done, r_elapsed = timed(lambda: batch(pre), len(texts))
    s_done, s_elapsed = timed(lambda: [search(x, 10) for x in texts], len(texts))
    return {
        **quality,
        "queries_per_second": round(done / elapsed, 1),
        "qps_how": "batch: tokenise all queries + retrieve all, n_threads=1",
        "qps_queries_timed": done,
        "qps_seconds": round(elapsed, 3),
        "retrieve_only_queries_per_second": round(r_done / r_elapsed, 1),
        "one_query_per_call_queries_per_second": round(s_done / s_elapsed, 1),
        "index_seconds": round(index_s, 3),
        "stemmer": "PyStemmer english (Snowball)",
        "stopwords": "bm25s 'en'",
    }, deep


def run_dense(corpus, judged, qrels, model_dir):
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(TORCH_THREADS)
    t = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu")
    load_s = time.perf_counter() - t
    texts = [passage_text(d) for d in corpus]
    ids = [d["id"] for d in corpus]
    first = texts[:PASSAGE_ENCODE_N]
    rest = texts[PASSAGE_ENCODE_N:]

    model.encode(first[:BATCH_SIZE], batch_size=BATCH_SIZE, normalize_embeddings=True)  # warm-up
    log(f"encoding the first {len(first)} passages (timed) ...")
    t = time.perf_counter()
    emb_first = model.encode(
        first, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True
    )
    first_s = time.perf_counter() - t
    log(f"{len(first) / first_s:.1f} passages/s; encoding the other {len(rest)} ...")
    t = time.perf_counter()
    emb_rest = (
        model.encode(rest, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)
        if rest
        else np.zeros((0, emb_first.shape[1]), dtype=np.float32)
    )
    rest_s = time.perf_counter() - t
    doc_emb = np.concatenate([emb_first, emb_rest]).astype(np.float32)

    q_texts = [q["text"] for q in judged]
    for x in q_texts[:5]:
        model.encode(x, normalize_embeddings=True)  # warm-up
    lat = []
    for x in q_texts[:QUERY_ENCODE_N]:
        t = time.perf_counter()
        model.encode(x, normalize_embeddings=True)
        lat.append((time.perf_counter() - t) * 1000.0)
    lat.sort()

    q_emb = model.encode(q_texts, batch_size=BATCH_SIZE, normalize_embeddings=True)
    sims = q_emb @ doc_emb.T
    depth = min(RRF_DEPTH, len(ids))
    deep = []
    for row in sims:
        top = np.argpartition(-row, depth - 1)[:depth]
        top = top[np.argsort(-row[top], kind="stable")]
        deep.append([ids[int(i)] for i in top])
    quality = evaluate([r[:10] for r in deep], judged, qrels)
    return {
        **quality,
        "passage_encode": {
            "passages": len(first),
            "which": f"the first {len(first)} passages of corpus.jsonl",
            "batch_size": BATCH_SIZE,
            "torch_threads": TORCH_THREADS,
            "seconds": round(first_s, 3),
            "passages_per_second": round(len(first) / first_s, 2),
        },
        "corpus_encode_seconds": round(first_s + rest_s, 2),
        "query_encode_ms": {
            "queries": len(lat),
            "median": round(percentile(lat, 50), 3),
            "p99": round(percentile(lat, 99), 3),
        },
        "model_load_seconds": round(load_s, 3),
    }, deep


def rrf(a, b):
    fused = []
    for ra, rb in zip(a, b):
        score = {}
        for ranking in (ra, rb):
            for rank, d in enumerate(ranking):
                score[d] = score.get(d, 0.0) + 1.0 / (RRF_K + rank + 1)
        fused.append(sorted(score, key=lambda d: (-score[d], d))[:10])
    return fused


def versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("bm25s", "PyStemmer", "numpy", "torch", "transformers", "sentence-transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    data_dir, model_dir = sys.argv[1], sys.argv[2]
    corpus, judged, qrels = load(data_dir)
    log(f"{len(corpus)} passages, {len(judged)} judged queries")
    log("bm25s ...")
    lexical, lex_deep = run_bm25s(corpus, judged, qrels)
    log(f"bm25s nDCG@10 {lexical['ndcg@10']}, {lexical['queries_per_second']} queries/s")
    log("sentence-transformers MiniLM ...")
    dense, dense_deep = run_dense(corpus, judged, qrels, model_dir)
    log(f"dense nDCG@10 {dense['ndcg@10']}")
    fused = evaluate(rrf(lex_deep, dense_deep), judged, qrels)
    print(
        json.dumps(
            {
                "documents": len(corpus),
                "queries": len(judged),
                "versions": versions(),
                "bm25s": lexical,
                "dense": dense,
                "rrf": {**fused, "k": RRF_K, "depth": RRF_DEPTH},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
