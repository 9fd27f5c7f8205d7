import torch

# Small tensors and small networks run fastest on one thread, and two cores shared by pytest and
# the processes that some tests start are oversubscribed by torch's default thread pool.
torch.set_num_threads(1)
