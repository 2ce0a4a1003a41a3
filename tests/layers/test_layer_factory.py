"""initialize_layer with the course factory's signature: None means "class default"."""

import pytest

from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D, initialize_layer

COURSE_NONES = dict(activation=None, weight_init=None, n_out=None, kernel_shape=None,
                    stride=None, pad=None, mode=None, keep_dim="first")


@pytest.mark.parametrize("name, given, default", [
    ("fully_connected", {"n_out": 5}, FullyConnected(5)),
    ("conv2d", {"n_out": 4, "kernel_shape": (3, 3)}, Conv2D(4, (3, 3))),
    ("pool2d", {"kernel_shape": 2}, Pool2D(2)),
    ("flatten", {}, Flatten()),
])
def test_arguments_left_none_keep_the_class_defaults(name, given, default):
    layer = initialize_layer(name, **(COURSE_NONES | given))
    assert type(layer) is type(default)
    assert layer.get_config() == default.get_config()


def test_given_arguments_are_passed_on():
    layer = initialize_layer("pool2d", kernel_shape=3, mode="average", stride=2, pad=1)
    assert layer.get_config() == Pool2D(3, "average", 2, 1).get_config()
    assert initialize_layer("flatten", keep_dim=-1).keep_dim == -1


def test_arguments_a_layer_does_not_take_are_refused():
    with pytest.raises(TypeError, match="kernel_shape"):
        initialize_layer("fully_connected", n_out=3, kernel_shape=3)


def test_unknown_layer_names_the_accepted_ones():
    with pytest.raises(ValueError, match="conv2d"):
        initialize_layer("transformer", n_out=3)
