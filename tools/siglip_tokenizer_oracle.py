#!/usr/bin/python3
"""SiglipTokenizer's ids for strings, written from transformers' code (v4
PreTrainedTokenizer.tokenize + models/siglip/tokenization_siglip.py) against
Python's sentencepiece (Debian: python3-sentencepiece), to extend the SigLIP
truth table of tests/data/text/tokenizers with more strings.

  tools/siglip_tokenizer_oracle.py MODEL_DIR STRINGS.json > out.jsonl
  tools/siglip_tokenizer_oracle.py MODEL_DIR --check TRUTH.jsonl

--check reproduces an existing table (the fixture's) first, so the oracle is
itself checked against transformers before it is trusted.
"""
import json
import re
import string
import sys

import sentencepiece as spm

SPIECE_UNDERLINE = "\u2581"


class Siglip:
    def __init__(self, folder):
        cfg = json.load(open(folder + "/tokenizer_config.json"))
        proto = open(folder + "/spiece.model", "rb").read()
        # get_spm_processor: normalizer_spec.MergeFrom(add_dummy_prefix=False),
        # written as the serialized field that protobuf merges.
        self.sp = spm.SentencePieceProcessor()
        self.sp.LoadFromSerializedProto(proto + b"\x1a\x02\x18\x00")
        self.eos, self.unk, self.pad = cfg.get("eos_token", "</s>"), cfg.get("unk_token", "<unk>"), cfg.get("pad_token", "</s>")
        self.added = {v["content"]: int(k) for k, v in cfg.get("added_tokens_decoder", {}).items()}
        for t in (self.eos, self.unk, self.pad):
            self.added.setdefault(t, self.sp.piece_to_id(t))
        self.special = [self.eos, self.unk, self.pad]
        self.lower = cfg.get("do_lower_case", True)
        self.unk_len = len(self.sp.encode(self.unk, out_type=str))

    def canonicalize(self, text):
        text = text.translate(str.maketrans("", "", string.punctuation))
        return re.sub(r"\s+", " ", text).strip()

    def _tokenize(self, text):
        text = self.canonicalize(text)
        tokens = self.sp.encode(self.unk + text, out_type=str)
        return tokens[self.unk_len:] if len(tokens) >= self.unk_len else tokens

    def tokenize(self, text):
        text = SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " ")
        if self.lower:
            pat = r"(" + r"|".join(re.escape(s) for s in self.special) + r")|" + r"(.+?)"
            text = re.sub(pat, lambda m: m.groups()[0] or m.groups()[1].lower(), text)
        # the trie split: leftmost, longest added token
        keys = sorted(self.added, key=len, reverse=True)
        parts, i, start = [], 0, 0
        while i < len(text):
            hit = next((k for k in keys if text.startswith(k, i)), None)
            if hit is None:
                i += 1
                continue
            parts.append(text[start:i])
            parts.append(hit)
            i += len(hit)
            start = i
        parts.append(text[start:])
        # eos / unk / pad strip both neighbours (AddedToken(lstrip=True, rstrip=True))
        for k, p in enumerate(parts):
            if p in self.added and k % 2 == 1:
                if k + 1 < len(parts) and parts[k + 1]:
                    parts[k + 1] = parts[k + 1].lstrip()
                if k > 0 and parts[k - 1]:
                    parts[k - 1] = parts[k - 1].rstrip()
        tokens = []
        for k, p in enumerate(parts):
            if not p:
                continue
            if k % 2 == 1:
                tokens.append(p)
            else:
                tokens.extend(self._tokenize(p))
        if len(tokens) > 1 and tokens[0] == SPIECE_UNDERLINE and tokens[1] in self.special:
            tokens = tokens[1:]
        return tokens

    def ids(self, text):
        ids = [self.added[t] if t in self.added else self.sp.piece_to_id(t) for t in self.tokenize(text)]
        eos = self.added[self.eos]
        return ids if ids and ids[-1] == eos else ids + [eos]


def main():
    tok = Siglip(sys.argv[1])
    if sys.argv[2] == "--check":
        rows = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
        bad = [i for i, r in enumerate(rows) if tok.ids(r["text"]) != r["ids"]]
        print(f"{len(rows) - len(bad)}/{len(rows)} equal", bad)
        sys.exit(1 if bad else 0)
    for s in json.load(open(sys.argv[2], encoding="utf-8")):
        print(json.dumps({"text": s, "ids": tok.ids(s)}, ensure_ascii=False))


if __name__ == "__main__":
    main()
