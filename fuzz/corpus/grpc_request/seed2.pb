
model1*
sBYTES*BhelloBworld