import torch

from gocor.lab.data.pairs import PairConfig
from gocor.lab.data.splits import make_batch
from gocor.lab.data.pool import PoolConfig, load_pool, make_pool, pool_batch


CFG = PoolConfig(size=10, batch_size=4, image_size=32, facade_share=0.25, dynamic=0.5)


def test_pool_holds_the_pairs_of_the_generator():
    pool = make_pool(CFG)
    assert pool["source"].dtype == torch.uint8 and pool["source"].shape == (10, 3, 32, 32)
    assert CFG.n_facades == 2 and CFG.facades_per_batch == 1
    made = make_batch(range(3), "train", PairConfig(size=32, dynamic=0.5))
    assert torch.equal(pool["flow"][:3], made["flow"]) and torch.equal(pool["mask"][:3], made["mask"])
    assert (pool["source"][:3].float() / 255 - made["source"]).abs().max() <= 0.5 / 255 + 1e-6


def test_each_epoch_visits_every_pair_once_in_a_seeded_order():
    pool = {"source": torch.arange(10).view(10, 1, 1, 1).expand(10, 3, 1, 1).to(torch.uint8),
            "target": torch.zeros(10, 3, 1, 1, dtype=torch.uint8),
            "flow": torch.zeros(10, 2, 1, 1), "mask": torch.ones(10, 1, 1, dtype=torch.bool)}
    cfg = PoolConfig(size=10, batch_size=2, image_size=8)
    ids = lambda seed, steps: [round(float(v) * 255) for s in steps
                               for v in pool_batch(pool, cfg, s, seed)["source"][:, 0, 0, 0]]
    first, second = ids(0, range(5)), ids(0, range(5, 10))
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert first != second                                  # a new order each epoch
    assert ids(1, range(5)) != first                        # and per seed
    assert ids(0, range(5)) == first                        # a pure function of (seed, step)


def test_disk_cache_round_trip(tmp_path):
    a = load_pool(CFG, tmp_path)
    assert (tmp_path / f"pool-{CFG.key}.pt").exists()
    b = load_pool(CFG, tmp_path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert PoolConfig(size=10, batch_size=4, image_size=32).key != CFG.key
