# models/: a model = a parameter table + a forward function that submits ops; the trainer.
libtaskgrad_la_SOURCES += models/tg_model.h models/model.c models/mlp.c models/spirals.c models/train.c
