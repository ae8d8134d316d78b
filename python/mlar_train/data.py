"""Training windows in the layout and order of the C++ trainer (src/train/token_batcher.cpp).

The ids (no BOS) are cut into windows of L tokens. Each epoch draws, from a
std::mt19937_64 seeded by --seed, an offset in [0, L) where the first window starts, then a
Fisher-Yates permutation of the windows. Window t_s .. t_{s+L-1} becomes
  inputs  [BOS, t_s, .., t_{s+L-2}]
  targets [t_s, .., t_{s+L-1}]
A batch takes B consecutive windows of the permutation, running on into the next epoch.
"""
from .mt19937_64 import MT19937_64


class TokenBatcher:
    def __init__(self, ids, seq_len, bos, seed):
        if seq_len < 2:
            raise ValueError(f"--seq {seq_len} is too short (at least 2 tokens)")
        if len(ids) < 2 * seq_len:
            raise ValueError(f"training text has {len(ids)} tokens, fewer than two sequences of {seq_len}")
        self.ids, self.len, self.bos = ids, seq_len, bos
        self.rng = MT19937_64(seed)
        self.epoch = 0
        self._start_epoch()

    def _start_epoch(self):
        self.epoch_rng = self.rng.state_text()
        rng, L = self.rng, self.len
        self.offset = rng() % L
        n = (len(self.ids) - self.offset) // L
        order = list(range(n))
        for i in range(n - 1, 0, -1):
            j = rng() % (i + 1)
            order[i], order[j] = order[j], order[i]
        self.order, self.cursor = order, 0

    def next_windows(self, n_seq):
        """The start offsets (into ids) of the next n_seq windows."""
        starts = []
        for _ in range(n_seq):
            if self.cursor == len(self.order):
                self.epoch += 1
                self._start_epoch()
            starts.append(self.offset + self.order[self.cursor] * self.len)
            self.cursor += 1
        return starts

    def next(self, n_seq):
        """n_seq (inputs, targets) pairs of lists of L ids."""
        out = []
        for s in self.next_windows(n_seq):
            tg = list(self.ids[s:s + self.len])
            out.append(([self.bos] + tg[:-1], tg))
        return out

    def state(self):
        """The C++ trainer's data state: generator at the epoch start, epoch, position."""
        return {"rng_at_epoch_start": self.epoch_rng, "epoch": self.epoch, "cursor": self.cursor}

    def restore(self, st):
        self.rng.set_state_text(st["rng_at_epoch_start"])
        self.epoch = int(st["epoch"])
        self._start_epoch()
        cursor = int(st["cursor"])
        if not 0 <= cursor <= len(self.order):
            raise ValueError(f"checkpoint: data position {cursor} outside the epoch of {len(self.order)} windows")
        self.cursor = cursor
