"""``data.augment`` in a config: checked like layers (type and arguments), built into the training loader's
transform, and refused with the entry's path for data that is not images, for a crop that changes the images' size
and for label mixing with a loss that cannot take class probabilities."""
import numpy as np
import pytest

from gpunet.config import ConfigError, build_augment, build_dataset, load_config
from gpunet.data import transforms as T
from gpunet.runner.run import check_run

from confighelpers import BASE, edited, line_of, only_problem, write

IMAGES = edited("  flatten: true\n", "  flatten: false\n", edited(
    "    - {type: Linear, in_features: 64, out_features: 50}\n",
    "    - {type: Flatten}\n    - {type: Linear, in_features: 64, out_features: 50}\n"))
AUGMENT = """\
  augment:
    - {type: RandomCrop, size: 8, padding: 1}
    - {type: RandomAffine, degrees: 10, translate: [0.1, 0.1], interpolation: bilinear}
    - {type: RandomErasing, p: 0.25}
    - {type: MixUp, alpha: 0.2}
"""


def with_augment(augment: str = AUGMENT, text: str = IMAGES) -> str:
    return edited("  flatten: false\n", "  flatten: false\n" + augment, text) if "flatten: false" in text else \
        edited("  flatten: true\n", "  flatten: true\n" + augment, text)


def test_augment_entries_are_checked_filled_in_and_built(tmp_path):
    config = load_config(write(tmp_path, with_augment()))
    assert config["data"]["augment"][0] == {"type": "RandomCrop", "size": 8, "padding": 1, "fill": 0,
                                            "padding_mode": "constant"}
    assert config["data"]["augment"][3] == {"type": "MixUp", "alpha": 0.2}
    assert load_config(write(tmp_path, IMAGES))["data"]["augment"] == []
    info = build_dataset(config).info
    compose = build_augment(config, info)
    assert [type(t) for t in compose.transforms] == [T.RandomCrop, T.RandomAffine, T.RandomErasing, T.MixUp]
    crop, affine, _, mixup = compose.transforms
    assert crop.size == (8, 8) and crop.padding == (1, 1)
    assert affine.degrees == (-10.0, 10.0) and affine.translate == (0.1, 0.1) and affine.interpolation == "bilinear"
    assert mixup.num_classes == 10 and mixup.alpha == 0.2  # num_classes from the data
    x = np.zeros((4, 1, 8, 8), np.float32)
    assert compose(x, np.arange(4), np.random.default_rng(0))[1].shape == (4, 10)
    assert build_augment(load_config(write(tmp_path, IMAGES)), info) is None


def test_unknown_transform_suggests_the_right_one(tmp_path):
    text = with_augment("  augment: [{type: RandomHorizontalFlp}]\n")
    path, problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{path}:{line_of(text, 'RandomHorizontalFlp')}: data.augment[0].type: unknown "
                              "transform; got 'RandomHorizontalFlp'; allowed: RandomHorizontalFlip, RandomCrop, "
                              "RandomAffine,")
    assert problem.endswith("did you mean 'RandomHorizontalFlip'?")


@pytest.mark.parametrize("entry,key,message", [
    ("{type: RandomHorizontalFlip, p: 1.5}", "p", "out of range; got 1.5"),
    ("{type: RandomAffine, degrees: [10, -10]}", "degrees", "must be (low, high) with low <= high"),
    ("{type: RandomErasing, ratio: [3, 1]}", "ratio", "must be (low, high) with low <= high"),
    ("{type: RandomCrop, padding: 2}", "size", "missing required key"),
])
def test_bad_arguments_name_the_entry_and_key(tmp_path, entry, key, message):
    text = with_augment(f"  augment: [{entry}]\n")
    path, problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{path}:{line_of(text, 'augment:')}: data.augment[0].{key}: ")
    assert message in problem


def test_mixing_labels_needs_a_loss_that_takes_class_probabilities(tmp_path):
    text = edited("  name: cross_entropy\n", "  name: nll\n", with_augment("  augment: [{type: CutMix}]\n"))
    path, problem = only_problem(tmp_path, text)
    assert problem == (f"{path}:{line_of(text, 'CutMix')}: data.augment[0].type: CutMix turns the labels into class "
                       "probabilities, which loss 'nll' does not take; got 'CutMix'; allowed: a transform that keeps "
                       "the labels, or loss.name: cross_entropy")


def test_flat_data_is_refused_with_the_entry_and_the_fix(tmp_path):
    text = with_augment("  augment: [{type: GaussianNoise, sigma: 0.1}]\n", BASE)  # digits flattened to (64,)
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as info:
        check_run(config, announce_device=False)
    problem = str(info.value.problems[0])
    assert problem.startswith(f"{tmp_path / 'run.yaml'}:{line_of(text, 'GaussianNoise')}: data.augment[0]: ")
    assert "GaussianNoise needs image samples of shape (channels, height, width), got samples of shape (64,), " \
        "from the data (digits) (set data.flatten: false to keep the images' shape)" in problem


def test_a_crop_that_changes_the_image_size_is_refused(tmp_path):
    text = with_augment("  augment: [{type: RandomHorizontalFlip}, {type: RandomCrop, size: 6}]\n")
    config = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as info:
        check_run(config, announce_device=False)
    problem = str(info.value.problems[0])
    assert f":{line_of(text, 'RandomCrop')}: data.augment[1]: RandomCrop would change the samples' shape from " \
        "(1, 8, 8) to (1, 6, 6), but evaluation data is not augmented" in problem
    text = with_augment("  augment: [{type: RandomCrop, size: 12, padding: 1}]\n")
    with pytest.raises(ConfigError, match=r"data.augment\[0\]: RandomCrop: size \(12, 12\) is larger than the padded "
                                          r"image \(10, 10\)"):
        check_run(load_config(write(tmp_path, text)), announce_device=False)


def test_augment_is_not_a_dataset_option(tmp_path):
    from gpunet.config import dataset_options

    config = load_config(write(tmp_path, with_augment()))
    assert "augment" not in dataset_options(config)
