"""Same-budget training: identical seeded patch batches for every model and a short L1 / Adam training loop."""
import numpy as np
import time
import torch
from torch import nn
from tqdm import tqdm
from typing import Iterator, Sequence, Tuple, Union

from msrn_plugin.zoo.evaluation import make_pair


class PatchSampler:
    """Random (LR, HR) patch batches from a few photos, identical for every model that uses the same seed.

    Args:
        photos (Sequence[np.ndarray]): HR photos, BGR uint8.
        scale (int): Upscaling factor.
        max_side (int): Centre-crop photos larger than this (keeps MATLAB-bicubic preparation quick). Default: 384.
    """

    def __init__(self, photos: Sequence[np.ndarray], scale: int, max_side: int = 384) -> None:
        self.scale = scale
        self.hr, self.lr = [], []
        for photo in photos:
            hr, lr = make_pair(photo, scale, crop=max_side if max(photo.shape[:2]) > max_side else 0)
            self.hr.append(torch.from_numpy(hr[:, :, ::-1].transpose(2, 0, 1).copy()).float() / 255.)
            self.lr.append(torch.from_numpy(lr[:, :, ::-1].transpose(2, 0, 1).copy()).float() / 255.)

    def batches(self, num: int, batch_size: int, lr_patch: int, seed: int) -> Iterator[Tuple[torch.Tensor, ...]]:
        """``num`` batches of ``batch_size`` random LR patches (and their HR patches), with flips and rotations."""
        gen = torch.Generator().manual_seed(seed)
        s = self.scale
        for _ in range(num):
            lrs, hrs = [], []
            for _ in range(batch_size):
                i = int(torch.randint(len(self.lr), (1, ), generator=gen))
                _, h, w = self.lr[i].shape
                top = int(torch.randint(h - lr_patch + 1, (1, ), generator=gen))
                left = int(torch.randint(w - lr_patch + 1, (1, ), generator=gen))
                lr = self.lr[i][:, top:top + lr_patch, left:left + lr_patch]
                hr = self.hr[i][:, top * s:(top + lr_patch) * s, left * s:(left + lr_patch) * s]
                k = int(torch.randint(8, (1, ), generator=gen))
                if k >= 4:
                    lr, hr = lr.flip(-1), hr.flip(-1)
                lrs.append(torch.rot90(lr, k % 4, (-2, -1)))
                hrs.append(torch.rot90(hr, k % 4, (-2, -1)))
            yield torch.stack(lrs), torch.stack(hrs)


def train_same_budget(net: nn.Module,
                      sampler: PatchSampler,
                      iters: int,
                      batch_size: int = 8,
                      lr_patch: int = 24,
                      learning_rate: float = 4e-4,
                      seed: int = 0,
                      device: Union[str, torch.device] = 'cpu',
                      desc: str = 'train') -> dict:
    """Train ``net`` in place: L1 loss, Adam (0.9, 0.99), constant learning rate, the sampler's seeded batches.

    Returns:
        dict: ``{'iters', 'seconds', 'first_loss', 'last_loss'}`` (losses averaged over the first / last 10%).
    """
    net.to(device).train()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=learning_rate,
                                 betas=(0.9, 0.99))
    losses = []
    start = time.perf_counter()
    for lq, gt in tqdm(sampler.batches(iters, batch_size, lr_patch, seed), total=iters, desc=desc, unit='it',
                       leave=False):
        loss = nn.functional.l1_loss(net(lq.to(device)), gt.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - start
    net.eval()
    tenth = max(1, len(losses) // 10)
    return {'iters': iters, 'seconds': seconds, 'first_loss': float(np.mean(losses[:tenth])),
            'last_loss': float(np.mean(losses[-tenth:]))}
