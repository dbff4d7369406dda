"""Ready architectures of the course notes: ``lenet5`` (seed 002), ``cifar_cnn`` (seed 000), residual networks
(``resnet``, with the BasicBlock, Bottleneck and PreActBlock blocks), the deep belief net and the perceptron trained by its rule."""
from .cifar import CifarCNN, cifar_cnn
from .dbn import DeepBeliefNet
from .lenet import LeNet5, lenet5
from .perceptron import Perceptron, PerceptronFit
from .resnet import BasicBlock, Bottleneck, PreActBlock, ResNet, resnet, resnet18, resnet34

__all__ = ["LeNet5", "lenet5", "CifarCNN", "cifar_cnn", "BasicBlock", "Bottleneck", "PreActBlock", "ResNet", "resnet",
           "resnet18", "resnet34", "Perceptron", "PerceptronFit",
           "DeepBeliefNet"]
