"""Training with several processes under torchrun: :mod:`.world` and :mod:`.replicas`."""
