"""maskrnn-tf: MaskRNN (instance-level video object segmentation) in TensorFlow/Keras 3.

The repository keeps its original layout (`maskrnn_tf/`, `datasets/`, `export/`), but only one top-level
import package is installed: `datasets/` becomes `maskrnn_tf.datasets` and `export/` becomes
`maskrnn_tf.export`, so installing never shadows Hugging Face `datasets` or any other `export` package.
See BUILD_NOTES.md ("Package layout").
"""
from setuptools import find_packages, setup

_core = find_packages(include=["maskrnn_tf", "maskrnn_tf.*"])
_datasets = ["maskrnn_tf.datasets"] + [
    "maskrnn_tf.datasets." + p for p in find_packages(where="datasets")
]
_export = ["maskrnn_tf.export"] + ["maskrnn_tf.export." + p for p in find_packages(where="export")]

setup(
    name="maskrnn-tf",
    version="0.1.0",
    description="MaskRNN: instance-level video object segmentation in TensorFlow/Keras",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=_core + _datasets + _export,
    package_dir={
        "maskrnn_tf": "maskrnn_tf",
        "maskrnn_tf.datasets": "datasets",
        "maskrnn_tf.export": "export",
    },
    package_data={"maskrnn_tf.export": ["*.config", "*.txt"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.7,<4",
        "tensorflow-datasets>=4.9.7,<5",
        "tensorflow-serving-api>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        "tensorboard-plugin-profile>=2.19,<3",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        # TensorFlow asks for ml_dtypes>=0.5.1; 0.7's extension module takes about 1 s more CPU to start, paid
        # by every process that imports TensorFlow: each CLI run and test process (BUILD_NOTES.md, Dependencies).
        "ml_dtypes>=0.5.1,<0.7",
        "opencv-python-headless>=4.9,<6",
        "pillow>=10.0,<14",
        "pyyaml>=6.0,<7",
        "tqdm>=4.66,<5",
    ],
    extras_require={"test": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "scipy>=1.11,<2"]},
)
