"""std::mt19937_64 in pure Python: the same raw 64-bit outputs and the same text form of
the state as libstdc++'s `os << engine` (312 words, then the position), so the data order
and the checkpoints of the C++ trainer (src/train/token_batcher.cpp) can be reproduced."""

_N, _M = 312, 156
_MASK = (1 << 64) - 1
_UPPER, _LOWER = _MASK ^ ((1 << 31) - 1), (1 << 31) - 1
_A = 0xB5026F5AA96619E9
_F = 6364136223846793005


class MT19937_64:
    def __init__(self, seed=5489):
        self.seed(seed)

    def seed(self, seed):
        x = [0] * _N
        x[0] = seed & _MASK
        for i in range(1, _N):
            x[i] = (_F * (x[i - 1] ^ (x[i - 1] >> 62)) + i) & _MASK
        self._x, self._p = x, _N

    def _twist(self):
        x = self._x
        for k in range(_N):
            y = (x[k] & _UPPER) | (x[(k + 1) % _N] & _LOWER)
            x[k] = x[(k + _M) % _N] ^ (y >> 1) ^ (_A if y & 1 else 0)
        self._p = 0

    def __call__(self):
        if self._p >= _N:
            self._twist()
        z = self._x[self._p]
        self._p += 1
        z ^= (z >> 29) & 0x5555555555555555
        z ^= (z << 17) & 0x71D67FFFEDA60000
        z ^= (z << 37) & 0xFFF7EEE000000000
        z ^= z >> 43
        return z & _MASK

    def state_text(self):
        """libstdc++'s `os << mt19937_64`: the 312 state words and the position, space-separated."""
        return " ".join(str(v) for v in self._x) + " " + str(self._p)

    def set_state_text(self, text):
        v = [int(t) for t in text.split()]
        if len(v) != _N + 1 or not 0 <= v[-1] <= _N or any(not 0 <= t <= _MASK for t in v[:-1]):
            raise ValueError("not a std::mt19937_64 state (312 words and a position)")
        self._x, self._p = v[:-1], v[-1]
