"""The SentencePiece yardstick of `crates/tokenizer/examples/unigram_speed.rs`:
how long SentencePiece's unigram trainer takes on the first 90 % of a text,
and how many tokens per byte its model needs for the last 10 %.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install sentencepiece
    /tmp/venv/bin/python reference/unigram_speed.py [FILE] --threads 2 --runs 3
    cargo run --release -p addmul-tokenizer --example unigram_speed -- [FILE] --runs 3

FILE defaults to `../shared/data/tinyshakespeare.txt` next to the repository.
Both sides split the text the same way: the first 90 % of its bytes, cut back
to a UTF-8 character boundary, is the training text, the rest is held out.
Each run trains a fresh model (in memory, nothing is written unless `--save`
is given); the script prints every run's seconds, their median, and the
held-out tokens per byte (fewer is better) of the last model. Timings on a
shared machine drift: run the two scripts one after the other, alternating.

Settings, with addmul's `UnigramTrainer` defaults alongside:

- the same: `model_type=unigram`, `vocab_size=4096` (addmul: 256 byte pieces
  + 3840 learned pieces), `byte_fallback=True`, `character_coverage=1.0` (the
  Rust example passes 1.0 too), `max_sentencepiece_length=16`,
  `seed_sentencepiece_size=1000000`, `shrinking_factor=0.75`,
  `num_sub_iterations=2`, a dummy `▁` in front (`add_dummy_prefix=True`), words
  split at spaces (`split_by_whitespace=True`).
- no normalisation, as addmul: `normalization_rule_name="identity"`,
  `remove_extra_whitespaces=False`.
- made to match addmul's pieces: `split_by_unicode_script=False` and
  `split_by_number=False` (SentencePiece's defaults forbid pieces that mix
  letters with punctuation or digits, such as "▁me," ; addmul allows them),
  `bos_id=-1`, `eos_id=-1` (addmul has no `<s>`, `</s>`; `<unk>` cannot be
  turned off, so SentencePiece keeps 3839 learned pieces to addmul's 3840).
- different, and left so: SentencePiece trains on sentences, one per line, so
  it never sees a newline and encodes each as the byte piece `<0x0A>`;
  addmul treats newlines as ordinary characters inside words (a line's last
  word runs on into the next line's first), so its pieces can hold them.
  This is part of how the two tokenize held-out text, and counts in the
  tokens per byte. The held-out text is encoded the way SentencePiece was
  trained, line by line, plus one `<0x0A>` token per newline (the figure to
  compare; the script says how many of its tokens are newlines); the count
  for the whole text in one `encode` call is printed too (higher: only the
  text's first line gets the dummy `▁`).
- `input_sentence_size` is 0 (every line is used) and `max_sentence_length`
  keeps its default (4192 bytes; tinyshakespeare's lines are far shorter).
- threads: SentencePiece uses `--threads` (`num_threads`, 2 by default here,
  the machine's two cores); addmul's trainer uses every core the process may
  run on (`std::thread::available_parallelism`), and its model does not
  depend on how many. For one thread each, run both under `taskset -c 0`
  (and `--threads 1` here).
"""

import argparse
import io
import os
import statistics
import time

import sentencepiece as spm


def split(data: bytes):
    """The first 90 % of the bytes, cut back to a character boundary, and the rest."""
    cut = len(data) * 9 // 10
    while cut > 0 and cut < len(data) and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut].decode("utf-8"), data[cut:].decode("utf-8")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser()
    p.add_argument("file", nargs="?", default=os.path.join(here, "../../shared/data/tinyshakespeare.txt"))
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--save", help="write the last model (SentencePiece's .model format) to this file")
    a = p.parse_args()

    with open(a.file, "rb") as f:
        train, held_out = split(f.read())
    lines = [line for line in train.split("\n") if line]
    print(
        f"{a.file}: training on {len(train.encode())} bytes ({len(lines)} non-empty lines), "
        f"held out {len(held_out.encode())} bytes; vocab {a.vocab}, {a.threads} threads; "
        f"sentencepiece {spm.__version__}"
    )

    seconds = []
    model = None
    for run in range(a.runs):
        out = io.BytesIO()
        start = time.perf_counter()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=out,
            model_type="unigram",
            vocab_size=a.vocab,
            character_coverage=1.0,
            byte_fallback=True,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            split_by_whitespace=True,
            split_by_unicode_script=False,
            split_by_number=False,
            max_sentencepiece_length=16,
            seed_sentencepiece_size=1_000_000,
            shrinking_factor=0.75,
            num_sub_iterations=2,
            input_sentence_size=0,
            bos_id=-1,
            eos_id=-1,
            num_threads=a.threads,
            minloglevel=2,
        )
        s = time.perf_counter() - start
        print(f"run {run + 1}: {s:.3f} s")
        seconds.append(s)
        model = out.getvalue()

    sp = spm.SentencePieceProcessor(model_proto=model)
    n_bytes = len(held_out.encode())
    # As trained: one line at a time (each with its dummy "▁"), and one
    # token (the byte piece <0x0A>) for every newline between lines.
    held_lines = held_out.split("\n")
    per_line = [sp.encode(line) for line in held_lines]
    assert "\n".join(sp.decode(ids) for ids in per_line) == held_out, "the model must round-trip"
    by_line = sum(map(len, per_line)) + len(held_lines) - 1
    # The whole held-out text at once: only its start gets a dummy "▁", so
    # every line's first word is cut as if it continued the previous line.
    whole = sp.encode(held_out)
    assert sp.decode(whole) == held_out, "the model must round-trip"
    print(
        f"median training time {statistics.median(seconds):.3f} s of {a.runs} runs; {sp.get_piece_size()} ids; "
        f"held-out {by_line} tokens / {n_bytes} bytes = {by_line / n_bytes:.5f} tokens per byte "
        f"(line by line, {len(held_lines) - 1} newlines as <0x0A>; the whole text in one call: {len(whole)} tokens, "
        f"{len(whole) / n_bytes:.5f} per byte)"
    )
    if a.save:
        with open(a.save, "wb") as f:
            f.write(model)
        print(f"model written to {a.save}")


if __name__ == "__main__":
    main()
