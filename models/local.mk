# models/: a model = a parameter table + a forward function that submits ops; the trainer.
libtaskgrad_la_SOURCES += models/tg_model.h models/model.c models/mlp.c models/gpt.c models/lstm.c models/spirals.c \
	models/data.c models/trainer.c models/checkpoint.c models/sample.c
