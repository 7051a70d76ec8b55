"""A small Keras CNN for 32x32 RGB images (about 0.3M parameters) with random weights, and samples.

sextant optimize examples/keras_cnn.py:build --samples examples/keras_cnn.py:samples
(or save it first, model.save("cnn.keras"), and run sextant optimize cnn.keras: no samples needed)
"""

import numpy as np


def build():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3), name="image")
    x = inputs
    for width in (32, 64, 128):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="keras_cnn")


def samples() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((8, 32, 32, 3)).astype(np.float32) for _ in range(2)]
