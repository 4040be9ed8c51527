"""A LeNet-5 trained on MNIST by a plain PyTorch script, outside classvis: the kind of model a
user brings. Its weights are saved as safetensors and given to classvis as the teacher:

    python examples/train_lenet5.py --out lenet5.safetensors
    python train.py architecture@teacher=lenet5 teacher_from=weights \\
        teacher_from.path=lenet5.safetensors

The layers are named as classvis's ``lenet5`` names them (``features`` then ``head``), so the
state dict fits ``architecture@teacher=lenet5`` key for key; the network takes MNIST pixels in
[0, 1], without normalisation. The recipe is the deep preset's (SGD, momentum 0.9, weight decay
5e-4, lr 0.05 annealed over 8 epochs of batches of 128).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torchvision import datasets, transforms


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tensors(root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    data = datasets.MNIST(root, train=train, download=False, transform=transforms.ToTensor())
    images = data.data.unsqueeze(1).float() / 255  # what ToTensor gives, all at once
    return images, data.targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CLASSVIS_DATA", "data"),
                        help="the folder holding MNIST/raw (default: $CLASSVIS_DATA)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("lenet5.safetensors"))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train_x, train_y = tensors(args.data, train=True)
    test_x, test_y = tensors(args.data, train=False)
    model = LeNet5()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = args.epochs * -(-len(train_x) // 128)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for epoch in range(args.epochs):
        model.train()
        for batch in torch.randperm(len(train_x)).split(128):
            loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy {accuracy:.4f}")
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()},
              str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
