
model1*
uUINT8:ÿ