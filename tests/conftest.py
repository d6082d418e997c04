"""Test-wide setup: 8 fake CPU devices, so multi-device code runs everywhere.

XLA reads the flag once, when JAX first initialises its backend, so it is set
here, before any test module imports JAX.
"""

import os

_FLAG = '--xla_force_host_platform_device_count=8'
if 'xla_force_host_platform_device_count' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _FLAG).strip()
# TensorFlow (pulled in by TFDS) must never claim an accelerator JAX uses.
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
