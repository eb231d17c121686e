# Options of the training loop (tools/lazyconfig_train_net.py reads them); not used by
# the model itself.
train = dict(
    output_dir="./output",
    init_checkpoint="",
    max_iter=90000,
    amp=dict(enabled=False),  # automatic mixed precision
    ddp=dict(  # DistributedDataParallel options
        broadcast_buffers=False,
        find_unused_parameters=False,
        fp16_compression=False,
    ),
    checkpointer=dict(period=5000, max_to_keep=100),  # PeriodicCheckpointer options
    eval_period=5000,
    log_period=20,
    device="cuda",
)
