from .deform_conv import DeformConv, ModulatedDeformConv, deform_conv, modulated_deform_conv
