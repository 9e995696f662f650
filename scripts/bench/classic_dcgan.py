"""The classic PyTorch DCGAN example (pytorch/examples, dcgan/main.py), trained for a given
number of minutes, its generator saved as an animegan export at given minutes: the
baseline that animegan's recipes are measured against at equal wall time.

    python scripts/bench/classic_dcgan.py --data /path/to/faces --minutes 30 --export-minutes 5,15,30 --out classic
    animegan-sample --ckpt classic/generator-30min.pt          # its faces, as animegan samples any export

The loop is the example's, step for step: ImageFolder + DataLoader (2 workers, shuffled,
JPEGs decoded every epoch), Resize/CenterCrop 64, Normalize 0.5, fp32, NCHW, D ending in
Sigmoid + BCELoss, Adam 2e-4 betas (0.5, 0.999), batch 128, nz 100, ngf = ndf = 64,
N(0, 0.02) init; D on a real batch, then on the fake batch (detached), then G on the same
fake batch with D's weight gradients computed; the example's per-step host reads and
printed line, its sample grid of fixed noise every 100 steps and its per-epoch
checkpoints. A folder without class subfolders is wrapped in one (ImageFolder needs it).

Its generator has animegan's dcgan64 layers (the example's `main.N.*` are our `net.N.*`),
so the exports load in animegan-sample and animegan-eval. scripts/bench/benchmark.py times the
same loop.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

NZ, NGF, NDF, IMAGE_SIZE = 100, 64, 64, 64


def classic_models(nz: int = NZ, ngf: int = NGF, ndf: int = NDF):
    """The example's Generator and Discriminator (their `main` Sequential), initialised as it does."""
    netG = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())
    netD = nn.Sequential(
        nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def weights_init(m):
        name = m.__class__.__name__
        if name.find("Conv") != -1:
            nn.init.normal_(m.weight.data, 0.0, 0.02)
        elif name.find("BatchNorm") != -1:
            nn.init.normal_(m.weight.data, 1.0, 0.02)
            nn.init.constant_(m.bias.data, 0)

    netG.apply(weights_init)
    netD.apply(weights_init)
    return netG, netD


def image_folder_root(data: Path, scratch: Path) -> Path:
    """`data` itself when it has class subfolders, else a folder holding one link to it."""
    if any(p.is_dir() for p in Path(data).iterdir()):
        return Path(data)
    root = scratch / "imagefolder"
    root.mkdir(parents=True, exist_ok=True)
    (root / "faces").symlink_to(Path(data).resolve(), target_is_directory=True)
    return root


def classic_loader(root: Path, batch: int = 128, workers: int = 2, drop_last: bool = False):
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    dataset = dset.ImageFolder(root=str(root), transform=transforms.Compose([
        transforms.Resize(IMAGE_SIZE), transforms.CenterCrop(IMAGE_SIZE), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    return torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers,
                                       drop_last=drop_last)


def classic_steps(loader, netG, netD, device: torch.device, outf: Path = None, log=None, niter: int = 0):
    """The example's training loop, one yield per step: (epoch, i); `niter` epochs (the
    example's --niter), or without end (0). With `outf`, also its fixed-noise grids every
    100 steps and per-epoch checkpoints."""
    import torchvision.utils as vutils
    from torch import optim

    criterion = nn.BCELoss()
    fixed_noise = torch.randn(loader.batch_size, NZ, 1, 1, device=device)
    real_label, fake_label = 1, 0
    optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    epoch = 0
    while not niter or epoch < niter:
        for i, data in enumerate(loader, 0):
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            real_cpu = data[0].to(device)
            batch_size = real_cpu.size(0)
            label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=device)
            output = netD(real_cpu).view(-1, 1).squeeze(1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(batch_size, NZ, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1, 1).squeeze(1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()
            # (2) Update G network: maximize log(D(G(z)))
            netG.zero_grad()
            label.fill_(real_label)  # fake labels are real for generator cost
            output = netD(fake).view(-1, 1).squeeze(1)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            line = '[%d/-][%d/%d] Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f' % (
                epoch, i, len(loader), errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)
            if log is not None:
                print(line, file=log)
            if outf is not None and i % 100 == 0:
                vutils.save_image(real_cpu, '%s/real_samples.png' % outf, normalize=True)
                fake = netG(fixed_noise)
                vutils.save_image(fake.detach(), '%s/fake_samples_epoch_%03d.png' % (outf, epoch), normalize=True)
            yield epoch, i
        if outf is not None:  # do checkpointing
            torch.save(netG.state_dict(), '%s/netG_epoch_%d.pth' % (outf, epoch))
            torch.save(netD.state_dict(), '%s/netD_epoch_%d.pth' % (outf, epoch))
        epoch += 1


def save_as_animegan_export(netG: nn.Module, path: Path, step: int, minutes: float) -> None:
    """The example's generator as an animegan generator export (same layers, keys renamed)."""
    from animegan import checkpoint as ckpt
    from animegan.models import Generator

    model = {"image_size": IMAGE_SIZE, "nz": NZ, "ngf": NGF}
    generator = Generator(NZ, NGF, IMAGE_SIZE)
    generator.load_state_dict({f"net.{k}": v for k, v in netG.state_dict().items()})
    config = {"source": "pytorch/examples dcgan/main.py", "minutes": minutes}
    ckpt.save_checkpoint(ckpt.generator_export(generator, model, epochs=0, config=config, step=step), path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="a folder of images (with or without class subfolders)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--minutes", type=float, default=30, help="training wall time (data loading included)")
    p.add_argument("--epochs", type=int, default=0, help="stop after this many epochs instead (the example's --niter)")
    p.add_argument("--export-minutes", default="", help="also export at these minutes, e.g. 5,15 (the end always)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="the example's --manualSeed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    marks = sorted({float(m) for m in args.export_minutes.split(",") if m} | {args.minutes})
    with tempfile.TemporaryDirectory() as scratch, open(args.out / "train.log", "w") as log:
        loader = classic_loader(image_folder_root(args.data, Path(scratch)), args.batch, args.workers)
        netG, netD = (m.to(device) for m in classic_models())
        started, paused, step = time.perf_counter(), 0.0, 0
        for _ in classic_steps(loader, netG, netD, device, outf=args.out, log=log, niter=args.epochs):
            step += 1
            trained = time.perf_counter() - started - paused
            while marks and trained >= marks[0] * 60:
                t0, minute = time.perf_counter(), marks.pop(0)
                save_as_animegan_export(netG, args.out / f"generator-{minute:g}min.pt", step, minute)
                print(f"classic: {minute:g} min, step {step}, {step * args.batch / trained:.1f} images/s",
                      file=sys.stderr, flush=True)
                paused += time.perf_counter() - t0
            if not marks:
                break
        if args.epochs:
            save_as_animegan_export(netG, args.out / "generator.pt", step, (time.perf_counter() - started) / 60)


if __name__ == "__main__":
    main()
