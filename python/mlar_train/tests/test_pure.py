"""Checks of the parts that need no torch (run here: python3 -m unittest discover python/mlar_train/tests).
The expected values were printed by a C++ program using libstdc++'s std::mt19937_64 and the
C++ trainer's window order (src/train/token_batcher.cpp)."""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from mlar_train.data import TokenBatcher  # noqa: E402
from mlar_train.mt19937_64 import MT19937_64  # noqa: E402
from mlar_train.schedule import lr_at  # noqa: E402


class MtTest(unittest.TestCase):
    def test_10000th_output_of_default_seed(self):
        g = MT19937_64()
        for _ in range(9999):
            g()
        self.assertEqual(g(), 9981545732273789042)  # the C++ standard's required value

    def test_state_text_matches_libstdcxx(self):
        h = MT19937_64(7)
        for _ in range(5):
            h()
        s = h.state_text()
        self.assertTrue(s.startswith("14954258244178669387 14394411287926793615 134046183771712386"))
        self.assertTrue(s.endswith("614412305317264903 4389920288877818037 5"))
        k = MT19937_64(1)
        k.set_state_text(s)
        self.assertEqual(k(), 1016289395134552428)
        self.assertEqual(h(), 1016289395134552428)

    def test_bad_state_refused(self):
        with self.assertRaises(ValueError):
            MT19937_64().set_state_text("1 2 3")


class BatcherTest(unittest.TestCase):
    def test_order_matches_cpp(self):
        ids = list(range(1000))
        b = TokenBatcher(ids, 16, bos=1, seed=3)
        self.assertEqual(b.offset, 11)
        self.assertEqual(len(b.order), 61)
        self.assertEqual(b.next_windows(6), [907, 27, 235, 603, 315, 155])
        b.next_windows(55)  # rest of epoch 0
        self.assertEqual(b.next_windows(6), [427, 603, 491, 635, 107, 795])
        self.assertEqual(b.epoch, 1)

    def test_layout(self):
        ids = [100 + i for i in range(64)]
        b = TokenBatcher(ids, 8, bos=1, seed=0)
        start = b.offset + b.order[0] * 8
        (inp, tgt), = b.next(1)
        self.assertEqual(tgt, ids[start:start + 8])
        self.assertEqual(inp, [1] + ids[start:start + 7])

    def test_restore_continues_the_stream(self):
        ids = list(range(500))
        a = TokenBatcher(ids, 10, 1, 42)
        a.next(37)  # crosses into epoch 1 (49 or 50 windows per epoch)
        a.next(20)
        st = a.state()
        self.assertEqual(st["epoch"], 1)
        b = TokenBatcher(ids, 10, 1, 42)
        b.restore(st)
        self.assertEqual(a.next(70), b.next(70))

    def test_too_short(self):
        with self.assertRaises(ValueError):
            TokenBatcher(list(range(15)), 8, 1, 0)


class ScheduleTest(unittest.TestCase):
    def test_warmup_and_cosine(self):
        self.assertAlmostEqual(lr_at(0, 1.0, 0.1, 4, 10), 0.25)
        self.assertAlmostEqual(lr_at(3, 1.0, 0.1, 4, 10), 1.0)
        self.assertAlmostEqual(lr_at(4, 1.0, 0.1, 4, 10), 1.0)  # first decay step: progress 0
        self.assertAlmostEqual(lr_at(9, 1.0, 0.1, 4, 10), 0.1)  # last update: the floor
        mid = 0.1 + 0.5 * 0.9 * (1 + math.cos(math.pi * 0.4))
        self.assertAlmostEqual(lr_at(6, 1.0, 0.1, 4, 10), mid)

    def test_single_update(self):
        self.assertEqual(lr_at(0, 2e-3, 0.1, 0, 1), 2e-3)
        self.assertEqual(lr_at(0, 2e-3, 0.1, 1, 1), 2e-3)


class StudentConfigTest(unittest.TestCase):
    def test_kinds(self):
        from mlar_train.models import InputError, check_student_config
        check_student_config("ds", {"model_type": "deepseek_v3", "num_hidden_layers": 2, "n_routed_experts": 0})
        check_student_config("gqa", {"model_type": "llama"})  # the control arm
        with self.assertRaisesRegex(InputError, "gpt2"):
            check_student_config("other", {"model_type": "gpt2"})
        with self.assertRaisesRegex(InputError, "mixture-of-experts"):
            check_student_config("moe", {"model_type": "deepseek_v3", "num_hidden_layers": 2, "n_routed_experts": 8,
                                         "first_k_dense_replace": 1})
        with self.assertRaisesRegex(InputError, "linear regime"):
            check_student_config("lin", {"model_type": "deepseek_v3", "num_hidden_layers": 2,
                                         "mla_retrofit": {"latent_linear": True}})


class OutputFilesTest(unittest.TestCase):
    def test_a_run_from_an_earlier_output_does_not_carry_its_log(self):
        # A layer-wise output trained on end to end: the new output must hold the new run's log, not the
        # layer-wise run's (the recipe's table once showed the layer-wise numbers for the e2e phase).
        import tempfile
        from mlar_train.output import carried_files
        with tempfile.TemporaryDirectory() as d:
            for fn in ("config.json", "tokenizer.json", "generation_config.json", "model.safetensors",
                       "model-00001-of-00002.safetensors", "model.safetensors.index.json", "train_log.jsonl",
                       "finetune.json", "finetune.json.tmp"):
                open(os.path.join(d, fn), "w").close()
            os.makedirs(os.path.join(d, "checkpoint"))
            self.assertEqual(carried_files(d), ["config.json", "generation_config.json", "tokenizer.json"])


if __name__ == "__main__":
    unittest.main()
