#!/usr/bin/env python3
"""Write the malformed-input corpus under crates/kiln-train/tests/bad_input/ (re-run to regenerate).

Every case is a file (or, for MNIST, a folder) that `kiln` must refuse with a non-zero exit and one
clear message naming the file, line or key; `cases.toml` lists each with the reader it feeds and
fragments the message must contain. `crates/kiln-train/tests/bad_input.rs` runs them. BERT checkpoint
cases are derived at test time from a random checkpoint (see that test). Standard library only.
"""
import gzip
import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "kiln-train", "tests", "bad_input")
QUICK = open(os.path.join(ROOT, "configs", "quickstart.toml"), encoding="utf-8").read()
QUICK = QUICK[QUICK.index("[model]"):]  # without the comment header, so line numbers are stable
LM = open(os.path.join(ROOT, "configs", "lm", "softmax.toml"), encoding="utf-8").read()
CASES = []


def case(reader, path, expect, data=None, generate=None):
    """`generate` (prefix, unit, times, suffix): a file too big to keep, written by the test."""
    full = os.path.join(OUT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    if data is not None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(full, "wb") as f:
            f.write(data)
    CASES.append((reader, path, expect, generate))


def sub(text, old, new, count=1):
    assert old in text, old
    return text.replace(old, new, count)


def line_of(text, needle):
    return "line %d" % (text[: text.index(needle)].count("\n") + 1)


# ---------------------------------------------------------------- configs (kiln check)
def config(name, text, expect):
    case("config", "config/%s.toml" % name, expect, text)


Q = QUICK
config("unknown_section", Q + "\n[modle]\nkind = 1\n", ["unknown field `modle`"])
config("unknown_train_key", sub(Q, "grad_clip = 1.0", "grad_clipping = 1.0"), ["unknown field `grad_clipping`", line_of(Q, "grad_clip")])
config("unknown_encoder_key", sub(Q, "n_layers = 2", "layers = 2"), ["unknown field `layers`"])
config("unknown_data_key", sub(Q, "max_depth = 3", "depth = 3"), ["unknown field `depth`"])
config("steps_string", sub(Q, "steps = 3000", 'steps = "3000"'), ["invalid type", "steps"])
config("seed_negative", sub(Q, "seed = 0", "seed = -1"), ["seed", "invalid value"])
config("dropout_string", sub(Q, "dropout = 0.0", 'dropout = "0.1"'), ["invalid type", "dropout"])
config("heads_float", sub(Q, "n_heads = 4", "n_heads = 4.5"), ["invalid type: floating point `4.5`"])
config("batch_zero", sub(Q, "batch_size = 32", "batch_size = 0"), ["batch_size"])
config("steps_zero", sub(Q, "steps = 3000", "steps = 0"), ["steps"])
config("lr_nan", sub(Q, "lr = 1e-3", "lr = nan"), ["lr must be a positive number"])
config("lr_zero", sub(Q, "lr = 1e-3", "lr = 0.0"), ["lr must be a positive number"])
config("dropout_above_one", sub(Q, "dropout = 0.0", "dropout = 1.5"), ["dropout"])
config("grad_clip_negative", sub(Q, "grad_clip = 1.0", "grad_clip = -1.0"), ["grad_clip"])
config("grad_accum_zero", sub(Q, "grad_clip = 1.0", "grad_clip = 1.0\ngrad_accum = 0"), ["grad_accum"])
config("eval_every_zero", sub(Q, "eval_every = 500", "eval_every = 0"), ["eval_every"])
config("betas_one", sub(Q, "weight_decay = 0.01 }", "weight_decay = 0.01, betas = [0.9] }"), ["betas"])
config("betas_above_one", sub(Q, "weight_decay = 0.01 }", "weight_decay = 0.01, betas = [1.5, 0.9] }"), ["betas"])
config("weight_decay_negative", sub(Q, "weight_decay = 0.01", "weight_decay = -0.5"), ["weight_decay"])
config("heads_zero", sub(Q, "n_heads = 4", "n_heads = 0"), ["n_heads"])
config("d_model_zero", sub(Q, "d_model = 64", "d_model = 0"), ["d_model"])
config("layers_zero", sub(Q, "n_layers = 2", "n_layers = 0"), ["n_layers"])
config("heads_do_not_divide", sub(Q, "n_heads = 4", "n_heads = 3"), ["not divisible by n_heads (3)"])
config("attention_unknown", sub(Q, '{ kind = "softmax" }', '{ kind = "flash" }'), ["unknown variant `flash`"])
config("position_unknown", sub(Q, '{ kind = "rope" }', '{ kind = "alibi" }'), ["unknown variant `alibi`"])
config("schedule_unknown", sub(Q, 'kind = "cosine"', 'kind = "cyclic"'), ["unknown variant `cyclic`"])
config("optimizer_unknown", sub(Q, 'kind = "adamw"', 'kind = "lion"'), ["unknown variant `lion`"])
config("rope_odd_head", sub(Q, "d_model = 64", "d_model = 12"), ["d_head must be even"])
config("model_data_mismatch", Q[: Q.index("[data]")] + '[data]\nkind = "mnist"\ndir = "mnist"\n' + Q[Q.index("[train]"):], ["cannot train on data kind `mnist`"])
config("no_data", Q[: Q.index("[data]")] + Q[Q.index("[train]"):], ["missing field `data`"])
config("no_train", Q[: Q.index("[train]")] + Q[Q.index("[output]"):], ["missing field `train`"])
config("steps_and_epochs", sub(Q, "steps = 3000", "steps = 3000\nepochs = 2"), ["not both"])
config("no_budget", sub(Q, "steps = 3000\n", ""), ["train.steps or train.epochs"])
config("backend_unknown", Q + '\n[device]\nbackend = "tpu"\n', ["unknown backend `tpu`"])
config("patience_zero", sub(Q, "seed = 0", "seed = 0\nearly_stopping = { patience = 0 }"), ["patience"])
config("listops_window", sub(Q, "max_len = 40", "max_len = 5"), ["leave none"])
config("listops_lengths_reversed", sub(Q, "min_len = 4", "min_len = 100"), ["min_len"])
config("syntax_error", sub(Q, "[model]", "[model"), ["line 1"])
config("duplicate_key", sub(Q, "n_heads = 4", "n_heads = 4\nn_heads = 2"), ["duplicate key"])
config("empty", "", ["missing field"])
config("binary", b"\x00\x01\xff\xfe[model]\n", ["UTF-8"])
config("lm_causal_nystrom", sub(LM, '{ kind = "softmax" }', '{ kind = "nystrom" }'), ["nystrom attention cannot be causal"])
# `kiln check` accepts a config whose data is absent (every config is checked without the datasets), so
# the missing-file cases run `kiln train`.
case("config_train", "config/lm_text_missing.toml", ["/nonexistent/input.txt"], sub(LM, "tinyshakespeare/input.txt", "/nonexistent/input.txt"))
TRAIN = """[train]
batch_size = 8
steps = 1
eval_every = 1
optimizer = { kind = "adam", lr = 1e-4 }
[output]
dir = "runs/x"
"""
config("vae_kappa_negative", """[model]
kind = "vae"
latent = { kind = "vmf", d = 5, kappa = -3.0 }
network = { kind = "mlp", hidden = [64] }
[data]
kind = "mnist"
dir = "/nonexistent/mnist"
""" + TRAIN, ["kappa"])
GAN = """[model]
kind = "wgan"
MODEL
[data]
kind = "toy2d"
distribution = "eight_gaussians"
""" + TRAIN
config("wgan_no_critic_steps", GAN.replace("MODEL", 'lipschitz = { kind = "spectral_norm" }\nn_critic = 0'), ["n_critic"])
config("wgan_penalty_negative", GAN.replace("MODEL", 'lipschitz = { kind = "gradient_penalty", lambda = -10.0 }'), ["lambda"])
NER = """[model]
kind = "ner"
head = { kind = "global_pointer", d_head = 16 }
[model.encoder]
d_model = 32
n_heads = 2
n_layers = 1
d_ff = 64
attention = { kind = "softmax" }
position = { kind = "rope" }
[data]
kind = "ner"
format = "cluener"
train = "/nonexistent/train.json"
valid = "/nonexistent/dev.json"
[train]
batch_size = 8
steps = 1
eval_every = 1
optimizer = { kind = "adam", lr = 1e-3 }
[output]
dir = "runs/x"
"""
config("ner_head_unknown", sub(NER, 'kind = "global_pointer"', 'kind = "span_pointer"'), ["span_pointer"])
config("ner_format_unknown", sub(NER, 'format = "cluener"', 'format = "brat"'), ["unknown variant `brat`"])
config("ner_two_backbones", sub(NER, "[data]", '[model.bert]\ndir = "/nonexistent/bert"\n[data]'), ["encoder", "bert"])
case("config_train", "config/ner_train_missing.toml", ["/nonexistent/train.json"], NER)

# ---------------------------------------------------------------- text (character LM)
T = "text/"
case("text", T + "empty.txt", ["too short"], "")
case("text", T + "one_char.txt", ["too short"], "a")
case("text", T + "invalid_utf8.txt", ["line 2", "invalid UTF-8"], b"First Citizen:\nBefore we \xff proceed\n")
case("text", T + "truncated_multibyte.txt", ["invalid UTF-8"], "Citizen: caf".encode() + "\u00e9".encode()[:1])
case("text", T + "utf16.txt", ["line 1", "invalid UTF-8"], "First Citizen:\n".encode("utf-16"))
case("text", T + "gzip.txt", ["invalid UTF-8"], gzip.compress(b"First Citizen:\n" * 50, mtime=0))
case("text", T + "latin1.txt", ["invalid UTF-8"], "Caf\u00e9 au lait\n".encode("latin-1"))
case("text", T + "missing.txt", ["missing.txt"])  # not written: the file does not exist
os.makedirs(os.path.join(OUT, T + "a_directory.txt"), exist_ok=True)
open(os.path.join(OUT, T + "a_directory.txt", ".keep"), "w").close()
case("text", T + "a_directory.txt", ["a_directory.txt"])
case("text", T + "overlong_utf8.txt", ["invalid UTF-8"], b"abc\xc0\xaf\n")
case("text", T + "surrogate_utf8.txt", ["invalid UTF-8"], b"abc\xed\xa0\x80\n")

# ---------------------------------------------------------------- CLUENER JSON lines
C = "cluener/"
GOOD = json.dumps({"text": "\u674e\u56db\u53bb\u5317\u4eac", "label": {"name": {"\u674e\u56db": [[0, 1]]}}}, ensure_ascii=False)
case("cluener", C + "truncated.json", ["line 2", "EOF"], GOOD + "\n" + GOOD[:20])
case("cluener", C + "invalid_utf8.json", ["line 2", "invalid UTF-8"], (GOOD + "\n").encode() + b'{"text": "\xff"}\n')
case("cluener", C + "no_text.json", ["line 1", "missing field `text`"], '{"label": {}}\n')
case("cluener", C + "reversed_span.json", ["line 1", "span [3, 1]"], '{"text": "\u674e\u56db\u53bb\u5317\u4eac", "label": {"name": {"\u674e\u56db": [[3, 1]]}}}\n')
case("cluener", C + "span_past_end.json", ["line 1", "outside a text of 5 characters"], '{"text": "\u674e\u56db\u53bb\u5317\u4eac", "label": {"address": {"\u5317\u4eac": [[3, 5]]}}}\n')
case("cluener", C + "span_text_mismatch.json", ["line 1", "reads `\u53bb\u5317`"], '{"text": "\u674e\u56db\u53bb\u5317\u4eac", "label": {"address": {"\u5317\u4eac": [[2, 3]]}}}\n')
case("cluener", C + "label_not_a_dict.json", ["line 1", "invalid type"], '{"text": "abc", "label": ["name"]}\n')
case("cluener", C + "negative_index.json", ["line 1", "invalid value"], '{"text": "abc", "label": {"name": {"a": [[-1, 0]]}}}\n')
case("cluener", C + "span_of_three.json", ["line 1", "span [0, 0, 1] is not [start, end]"], '{"text": "abc", "label": {"name": {"a": [[0, 0, 1]]}}}\n')
case("cluener", C + "array_line.json", ["line 1", "invalid type"], '["text", "abc"]\n')
case("cluener", C + "empty.json", ["no sentences"], "")
case("cluener", C + "huge_line.json", ["line 1", "longer than 16 MiB"], generate=('{"text": "', "a", 17 << 20, '"}\n'))
case("cluener", C + "text_not_string.json", ["line 1", "invalid type"], '{"text": 42}\n')

# ---------------------------------------------------------------- column files (BIO / BIOES / BMES)
B = "columns/"
case("columns", B + "no_tag_column.txt", ["line 2", "has no tag column"], "\u4e2d B-LOC\n\u56fd\n")
case("columns", B + "unknown_prefix.txt", ["line 2", "unknown tag `Q-LOC`"], "\u4e2d B-LOC\n\u56fd Q-LOC\n")
case("columns", B + "underscore_tag.txt", ["line 1", "unknown tag `B_PER`"], "\u5f20 B_PER\n\u4e09 I_PER\n")
case("columns", B + "tag_without_type.txt", ["line 1", "unknown tag `B-`"], "\u5f20 B-\n")
case("columns", B + "invalid_utf8.txt", ["line 3", "invalid UTF-8"], "\u4e2d B-LOC\n\u56fd I-LOC\n".encode() + b"\xff O\n")
case("columns", B + "utf16.txt", ["line 1", "invalid UTF-8"], "\u4e2d B-LOC\n".encode("utf-16"))
case("columns", B + "empty.txt", ["no sentences"], "")
case("columns", B + "only_blank_lines.txt", ["no sentences"], "\n\r\n  \n")
case("columns", B + "huge_line.txt", ["line 1", "longer than 16 MiB"], generate=("", "x", 17 << 20, " O\n"))
case("columns", B + "lowercase_tag.txt", ["line 1", "unknown tag `b-loc`"], "\u4e2d b-loc\n")
case("columns", B + "crlf_missing_tag.txt", ["line 3", "has no tag column"], "\u4e2d B-LOC\r\n\u56fd E-LOC\r\n\u4eba\r\n")
case("columns", B + "gzip.txt", ["line 1", "invalid UTF-8"], gzip.compress("\u4e2d B-LOC\n".encode() * 10, mtime=0))

# ---------------------------------------------------------------- CoNLL token-per-line files (same reader, words)
K = "conll/"
case("conll", K + "one_column.txt", ["line 2", "has no tag column"], "EU NNP B-NP B-ORG\nrejects\n")
case("conll", K + "docstart_only.txt", ["no sentences"], "-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n")
case("conll", K + "bad_tag.txt", ["line 1", "unknown tag `ORG`"], "EU NNP B-NP ORG\n")
case("conll", K + "pos_as_last_column.txt", ["line 1", "unknown tag `NNP`"], "EU B-ORG NNP\n")
case("conll", K + "invalid_utf8.txt", ["line 2", "invalid UTF-8"], b"EU NNP B-NP B-ORG\nM\xfcller NNP B-NP B-PER\n")
case("conll", K + "latin1.txt", ["line 1", "invalid UTF-8"], "M\u00fcller NNP B-NP B-PER\n".encode("latin-1"))
case("conll", K + "empty.txt", ["no sentences"], "")
case("conll", K + "huge_line.txt", ["line 1", "longer than 16 MiB"], generate=("", "EU ", 6 << 20, "O\n"))
case("conll", K + "tag_with_space_prefix.txt", ["line 1", "unknown tag `X-ORG`"], "EU NNP X-ORG\n")
case("conll", K + "truncated_binary.txt", ["invalid UTF-8"], b"EU NNP B-NP B-ORG\n\x89PNG\r\n\x1a\n\x00\x00")

# ---------------------------------------------------------------- CMeEE (CBLUE) JSON
M = "cmeee/"
ITEM = {"text": "\u53d1\u70ed\u4e09\u5929", "entities": [{"start_idx": 0, "end_idx": 1, "type": "sym", "entity": "\u53d1\u70ed"}]}
case("cmeee", M + "truncated_array.json", ["line 1", "EOF"], json.dumps([ITEM], ensure_ascii=False)[:-5])
case("cmeee", M + "reversed_span.json", ["item 0", "span [1, 0]"], json.dumps([{"text": "abc", "entities": [{"start_idx": 1, "end_idx": 0, "type": "sym"}]}]))
case("cmeee", M + "span_past_end.json", ["item 0", "outside 3 characters"], json.dumps([{"text": "abc", "entities": [{"start_idx": 1, "end_idx": 3, "type": "sym"}]}]))
case("cmeee", M + "span_past_end_lines.json", ["line 2", "outside 3 characters"], json.dumps(ITEM, ensure_ascii=False) + "\n" + json.dumps({"text": "abc", "entities": [{"start_idx": 0, "end_idx": 9, "type": "sym"}]}) + "\n")
case("cmeee", M + "no_text.json", ["missing field `text`"], json.dumps([{"entities": []}]))
case("cmeee", M + "no_type.json", ["missing field `type`"], json.dumps([{"text": "abc", "entities": [{"start_idx": 0, "end_idx": 1}]}]))
case("cmeee", M + "index_string.json", ["invalid type"], json.dumps([{"text": "abc", "entities": [{"start_idx": "0", "end_idx": 1, "type": "sym"}]}]))
case("cmeee", M + "negative_index.json", ["invalid value"], json.dumps([{"text": "abc", "entities": [{"start_idx": -1, "end_idx": 1, "type": "sym"}]}]))
case("cmeee", M + "invalid_utf8.json", ["line 2", "invalid UTF-8"], b'[{"text": "abc",\n "entities": [], "x": "\xff"}]')
case("cmeee", M + "empty.json", ["no sentences"], "")
case("cmeee", M + "object_not_array.json", ["line 1", "invalid type"], '{"text": "abc"}\n{"text": 5}\n')
case("cmeee", M + "empty_array.json", ["no sentences"], "[]")


# ---------------------------------------------------------------- MNIST IDX (a folder per case)
def idx_images(n, rows=28, cols=28, magic=0x0803, pixels=None):
    head = struct.pack(">IIII", magic, n, rows, cols)
    return head + (pixels if pixels is not None else bytes((i * 7) % 256 for i in range(n * rows * cols)))


def idx_labels(n, magic=0x0801, labels=None):
    return struct.pack(">II", magic, n) + (labels if labels is not None else bytes(i % 10 for i in range(n)))


N = 10


def mnist(name, expect, **override):
    files = {
        "train-images-idx3-ubyte.gz": gzip.compress(idx_images(N), mtime=0),
        "train-labels-idx1-ubyte.gz": gzip.compress(idx_labels(N), mtime=0),
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_images(N), mtime=0),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_labels(N), mtime=0),
    }
    for k, v in override.items():
        stem = k.replace("_", "-")
        files.pop(stem + ".gz", None)
        if v is not None:
            files[stem] = v
    d = os.path.join(OUT, "mnist", name)
    os.makedirs(d, exist_ok=True)
    for f, b in files.items():
        with open(os.path.join(d, f), "wb") as fh:
            fh.write(b)
    CASES.append(("mnist", "mnist/" + name, expect, None))


mnist("image_magic", ["train-images-idx3-ubyte", "magic"], train_images_idx3_ubyte=idx_images(N, magic=0x0801))
mnist("label_magic", ["train-labels-idx1-ubyte", "magic"], train_labels_idx1_ubyte=idx_labels(N, magic=0x0803))
mnist("truncated_header", ["train-images-idx3-ubyte"], train_images_idx3_ubyte=idx_images(N)[:10])
mnist("truncated_pixels", ["train-images-idx3-ubyte"], train_images_idx3_ubyte=idx_images(N)[:-100])
mnist("extra_pixels", ["train-images-idx3-ubyte"], train_images_idx3_ubyte=idx_images(N) + b"\x00" * 28)
mnist("count_mismatch", ["labels but", "images"], train_labels_idx1_ubyte=idx_labels(N - 1))
mnist("label_not_digit", ["train-labels-idx1-ubyte", "not a digit"], train_labels_idx1_ubyte=idx_labels(N, labels=bytes([3] * (N - 1) + [12])))
mnist("empty_file", ["t10k-images-idx3-ubyte"], t10k_images_idx3_ubyte=b"")
mnist("sizes_disagree", ["t10k-images-idx3-ubyte", "32x32 images, but the training images are 28x28"], t10k_images_idx3_ubyte=idx_images(N, 32, 32))
mnist("labels_missing", ["t10k-labels-idx1-ubyte"], t10k_labels_idx1_ubyte=None)
mnist("corrupt_gzip", ["train-images-idx3-ubyte.gz"], train_images_idx3_ubyte=None)
with open(os.path.join(OUT, "mnist", "corrupt_gzip", "train-images-idx3-ubyte.gz"), "wb") as fh:
    fh.write(gzip.compress(idx_images(N), mtime=0)[:200])
mnist("zero_images", ["train-images-idx3-ubyte", "no images"], train_images_idx3_ubyte=idx_images(0), train_labels_idx1_ubyte=idx_labels(0))
mnist("label_file_truncated", ["train-labels-idx1-ubyte"], train_labels_idx1_ubyte=idx_labels(N)[:-3])

# ---------------------------------------------------------------- STS Benchmark (tsv) and Chinese STS
S = "stsb/"
HEAD = "split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2\n"
ROW = "test\tmain-captions\tMSRvid\t2012test\t0001\t5.000\tA man is playing a flute.\tA man plays a flute.\n"
case("stsb", S + "no_header.tsv", ["line 1", "header"], ROW * 3)
case("stsb", S + "seven_fields.tsv", ["line 3", "7 tab-separated fields"], HEAD + ROW + "test\tx\ty\tz\t1\t2.0\tonly one sentence\n")
case("stsb", S + "score_word.tsv", ["line 2", "score `high`"], HEAD + ROW.replace("5.000", "high"))
case("stsb", S + "invalid_utf8.tsv", ["line 2", "invalid UTF-8"], (HEAD).encode() + ROW.encode().replace(b"flute", b"fl\xffte", 1))
case("stsb", S + "empty.tsv", ["line 1", "header"], "")
case("stsb", S + "header_only.tsv", ["no pairs"], HEAD)
case("stsb", S + "spaces_not_tabs.tsv", ["line 1", "header"], HEAD.replace("\t", " ") + ROW.replace("\t", " "))
case("stsb", S + "score_empty.tsv", ["line 2", "score ``"], HEAD + ROW.replace("5.000", ""))
case("stsb", S + "corrupt_gzip.tsv.gz", ["corrupt_gzip.tsv.gz"], gzip.compress((HEAD + ROW * 20).encode(), mtime=0)[:40])
case("stsb", S + "utf16.tsv", ["UTF-8"], (HEAD + ROW).encode("utf-16"))
case("stsb", S + "no_test_rows.tsv", ["no pairs"], HEAD + ROW.replace("test\t", "train\t", 1) * 3)

Z = "sts_zh/"


def zh(name, expect, data):
    d = os.path.join(OUT, "sts_zh", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "STS-B.test.data"), "wb") as fh:
        fh.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    CASES.append(("sts_zh", "sts_zh/" + name, expect, None))


ZROW = "\u4e00\u4e2a\u7537\u4eba\u5728\u5439\u7b1b\u5b50\u3002\t\u4e00\u4e2a\u7537\u4eba\u5728\u5439\u7b1b\u3002\t5\n"
zh("two_fields", ["line 2", "2 tab-separated fields"], ZROW + "\u53ea\u6709\u4e00\u53e5\t3\n")
zh("four_fields", ["line 1", "4 tab-separated fields"], ZROW.replace("\t5", "\t5\t1"))
zh("label_word", ["line 1", "label `five`"], ZROW.replace("\t5", "\tfive"))
zh("invalid_utf8", ["line 2", "UTF-8"], ZROW.encode() + b"\xff\xfe\t\xe4\xb8\t1\n")
zh("empty", ["no pairs"], "")
zh("blank_lines", ["no pairs"], "\n\n  \n")
zh("spaces_not_tabs", ["line 1", "1 tab-separated fields"], ZROW.replace("\t", " "))
zh("gbk", ["UTF-8"], ZROW.encode("gbk"))
zh("label_empty", ["line 1", "label ``"], ZROW.replace("\t5", "\t"))
zh("utf16", ["UTF-8"], ZROW.encode("utf-16"))

# ---------------------------------------------------------------- the manifest
with open(os.path.join(OUT, "cases.toml"), "w", encoding="utf-8") as f:
    f.write("# Written by scripts/reliability/make_bad_inputs.py; run by crates/kiln-train/tests/bad_input.rs.\n")
    f.write("# Each case must make `kiln` exit non-zero with one message naming the file and containing `expect`.\n")
    for reader, path, expect, generate in CASES:
        f.write("\n[[case]]\nreader = %s\npath = %s\nexpect = %s\n" % (json.dumps(reader), json.dumps(path), json.dumps(expect, ensure_ascii=False)))
        if generate:
            prefix, unit, times, suffix = generate
            f.write("generate = { prefix = %s, unit = %s, times = %d, suffix = %s }\n" % (json.dumps(prefix), json.dumps(unit), times, json.dumps(suffix)))
counts = {}
for r, *_ in CASES:
    counts[r] = counts.get(r, 0) + 1
print(", ".join("%s %d" % kv for kv in counts.items()), file=sys.stderr)
