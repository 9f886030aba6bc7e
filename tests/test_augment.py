"""Batched augmentation: reproducible per generator, unchanged on CPU, and a CPU generator drives a CUDA batch."""

import pytest

torch = pytest.importorskip("torch")

from emolive.training.augment import AugmentConfig, augment_batch  # noqa: E402

# out[:, 0, ::12, ::12], out.sum() and the sum of squares, computed with the augmentation as it was before
# random numbers were drawn on the generator's device: CPU training must give the very same batches.
RECORDED = {
    (AugmentConfig(), 7): (
        [[[-1.162497639656067, -1.168405294418335, -1.1743128299713135, -1.1802204847335815],
          [-0.9186089634895325, -0.9286649227142334, -0.9387208819389343, -0.9487768411636353],
          [-0.6351302862167358, -0.6451862454414368, -0.6552422046661377, -0.6652982831001282],
          [-0.35165172815322876, -0.3617076575756073, -0.371763676404953, -0.38181963562965393]],
         [[-0.05041596293449402, -0.07753267884254456, -0.10352030396461487, -0.1295078694820404],
          [0.19473758339881897, 0.16826868057250977, 0.14228108525276184, 0.11629346013069153],
          [0.4400576055049896, 0.4140699803829193, 0.3880824148654938, 0.36209478974342346],
          [0.6858588457107544, 0.6598712205886841, 0.6338837146759033, 0.607896089553833]]],
        -660.6273193359375, 1778.3551706293847),
    (AugmentConfig(strength=0.5, erase_prob=1.0), 3): (
        [[[-1.0128779411315918, -1.0352389812469482, -1.0562597513198853, -1.066686749458313],
          [-0.7607351541519165, -0.7825489044189453, -0.8035695552825928, -0.8245903253555298],
          [-0.5085923671722412, -0.5298587679862976, -0.5508794188499451, -0.5719001293182373],
          [-0.256148099899292, -0.2771686315536499, 0.8965299725532532, -0.3192099928855896]],
         [[-0.02099643647670746, -0.041158005595207214, -0.054201290011405945, -0.04828505218029022],
          [0.2629837393760681, 0.2433120757341385, 0.22571544349193573, 0.2081187218427658],
          [0.5469638109207153, 1.1093522310256958, 0.5101854801177979, 0.49258869886398315],
          [0.8309440612792969, 0.23807764053344727, 0.7946553230285645, 0.7770586609840393]]],
        -269.8580322265625, 1895.5482249403021),
}


def _batch(device="cpu"):
    return torch.linspace(-1, 1, 2 * 48 * 48).reshape(2, 1, 48, 48).to(device)


@pytest.mark.parametrize(("cfg", "seed"), list(RECORDED))
def test_a_cpu_generator_gives_the_batches_recorded_before_the_device_fix(cfg, seed):
    grid, total, squares = RECORDED[(cfg, seed)]
    out = augment_batch(_batch(), cfg, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(out[:, 0, ::12, ::12], torch.tensor(grid), rtol=0, atol=1e-6)
    assert out.sum().item() == pytest.approx(total, rel=1e-6)
    assert out.double().square().sum().item() == pytest.approx(squares, rel=1e-6)  # the erased patches' noise included


def test_the_generator_alone_decides_the_draws():
    x = _batch()
    first, again = (augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(1)) for _ in range(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(2)))
    assert augment_batch(x, AugmentConfig()).shape == x.shape  # no generator: the global one


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cpu_generator_augments_a_cuda_batch_like_a_cpu_one():
    cfg = AugmentConfig(erase_prob=1.0)
    on_cpu = augment_batch(_batch(), cfg, torch.Generator().manual_seed(5))
    on_cuda = augment_batch(_batch("cuda"), cfg, torch.Generator().manual_seed(5))
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-4, atol=1e-4)  # same draws; kernels may round differently
