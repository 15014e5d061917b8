// SPDX-License-Identifier: MIT
// Runs each ported PyTorch function once, compares it with the built-in operation, and checks its first and
// second derivatives with GradCheck and GradGradCheck through the typed overloads (in float64, as PyTorch asks).
using System;
using CustomAutograd;
using CustomAutograd.Examples.PyTorchPorts;
using TorchSharp;
using static TorchSharp.torch;

torch.manual_seed(0);
Tensor x = randn(4, 5, dtype: ScalarType.Float64, requires_grad: true);
Tensor weight = randn(3, 5, dtype: ScalarType.Float64, requires_grad: true);
Tensor bias = randn(3, dtype: ScalarType.Float64, requires_grad: true);
Tensor t = randn(6, dtype: ScalarType.Float64, requires_grad: true);

Report("LinearFunction(x, w, b)", PortedFunctions.Linear.Apply(x, weight, bias), nn.functional.linear(x, weight, bias),
       GradCheck.Check(PortedFunctions.Linear, x, weight, bias), GradGradCheck.Check(PortedFunctions.Linear, x, weight, bias));
Report("LinearFunction(x, w)", PortedFunctions.Linear.Apply(x, weight), nn.functional.linear(x, weight),
       GradCheck.Check(PortedFunctions.Linear, x, weight, null), GradGradCheck.Check(PortedFunctions.Linear, x, weight, null));
Report("MulConstant(t, 5.0)", PortedFunctions.MulConstant.Apply(t, 5.0), t * 5.0,
       GradCheck.Check(PortedFunctions.MulConstant, t, 5.0), GradGradCheck.Check(PortedFunctions.MulConstant, t, 5.0));
Report("LegendrePolynomial3(t)", PortedFunctions.LegendrePolynomial3.Apply(t), 0.5 * (5 * t.pow(3) - 3 * t),
       GradCheck.Check(PortedFunctions.LegendrePolynomial3, t), GradGradCheck.Check(PortedFunctions.LegendrePolynomial3, t));
Report("Exp(t)", PortedFunctions.Exp.Apply(t), t.exp(),
       GradCheck.Check(PortedFunctions.Exp, t), GradGradCheck.Check(PortedFunctions.Exp, t));

static void Report(string call, Tensor output, Tensor builtIn, GradCheckResult first, GradCheckResult second)
{
    double difference = (output - builtIn).abs().max().item<double>();
    Console.WriteLine($"{call,-24} max |custom - built-in| {difference:G3}  {Verdict(first)}, {Verdict(second)}");
}

static string Verdict(GradCheckResult result) => $"{result.CheckName} {(result.Passed ? "passed" : "failed")}";
