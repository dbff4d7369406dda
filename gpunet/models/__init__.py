"""Ready architectures of the course notes: ``lenet5`` (seed 002), ``cifar_cnn`` (seed 000) and residual networks
(``resnet``, with the BasicBlock, Bottleneck and PreActBlock blocks); seed 002's generative models: the variational
autoencoder (``vae``) and GANs (``gan``: MLP and DCGAN generators and discriminators, and their losses); the deep
belief net and the perceptron trained by its rule."""
from .cifar import CifarCNN, cifar_cnn
from .dbn import DeepBeliefNet
from .gan import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from .lenet import LeNet5, lenet5
from .perceptron import Perceptron, PerceptronFit
from .resnet import BasicBlock, Bottleneck, PreActBlock, ResNet, resnet, resnet18, resnet34
from .vae import VAE

__all__ = ["LeNet5", "lenet5", "CifarCNN", "cifar_cnn", "BasicBlock", "Bottleneck", "PreActBlock", "ResNet", "resnet",
           "resnet18", "resnet34", "VAE", "MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator",
           "Perceptron", "PerceptronFit", "DeepBeliefNet"]
