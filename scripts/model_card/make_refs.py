"""Reference image sets for the model card's FID table: every 25th training image (2 000) and the
first 1 000 test images, from the CIFAR-10 folder in $DIFFNOTES_CIFAR10 (or the data cache)."""
import warnings

from diffnotes import data

warnings.simplefilter("ignore", data.DataWarning)
train, _ = data.load_cifar10(split="train")
test, _ = data.load_cifar10(split="test")
data.save_npz("runs/eval/ref2k_train.npz", train[::25])
data.save_npz("runs/eval/real1k_test.npz", test[:1000])
print(train[::25].shape, test[:1000].shape)
