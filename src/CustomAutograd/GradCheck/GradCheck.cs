// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using static TorchSharp.torch;

namespace CustomAutograd;

/// <summary>
/// Gradient checking, the counterpart of PyTorch's <c>torch.autograd.gradcheck</c>: compares the Jacobian that
/// backward computes (vector-Jacobian products with one-hot output gradients, through <see cref="Autograd.Grad"/>)
/// with a Jacobian from central finite differences, for every input that requires grad and every output that
/// requires grad, in float64. Works for every form of custom function and for any function of TorchSharp
/// operations: <c>GradCheck.Check(linear, x, w, b)</c>, <c>GradCheck.Check(mulConstant, x, 5.0)</c>,
/// <c>GradCheck.Check(t =&gt; t.sin(), x)</c>.
/// </summary>
/// <remarks>
/// <para>Use float64 inputs: with other dtypes the result carries a warning and
/// <see cref="GradCheckResult.LowPrecision"/>, as PyTorch warns. Complex and sparse inputs are not supported
/// (<see cref="NotSupportedException"/>). Null inputs (where the form allows them) and inputs that do not require
/// grad are passed through unchanged and not checked. Inputs that require grad are copied (same shape, strides,
/// dtype and device) and the copies are perturbed in place, one element at a time, so the caller's tensors are
/// never modified.</para>
/// <para>The check runs with grad mode on. An exception thrown by the function itself (its forward) propagates
/// unchanged; a backward that throws is reported as <see cref="GradCheckFailureKind.BackwardFailed"/>.</para>
/// <para>Cost (slow mode): two function evaluations per input element and two backward passes per output
/// element, and two float64 matrices of (output elements x input elements) per pair. For large inputs set
/// <see cref="GradCheckOptions.FastMode"/>.</para>
/// <para>Every overload may throw <see cref="GradCheckException"/> (the check failed and
/// <see cref="GradCheckOptions.RaiseException"/> is set), <see cref="ArgumentException"/> (no input requires
/// grad, or an input has a dimension with stride 0) and <see cref="NotSupportedException"/> (a complex or sparse
/// input, or a complex output, requires grad).</para>
/// </remarks>
public static class GradCheck
{
    /// <summary>Checks the gradients of a function of several tensors with several results.</summary>
    /// <param name="function">The function; it is called many times with the same number of inputs and must
    /// return outputs of the same shapes each time. It receives the inputs in order, nulls included.</param>
    /// <param name="inputs">The point to check at; only inputs with <c>requires_grad</c> are checked, and null
    /// entries are passed to the function as null.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result; with <see cref="GradCheckOptions.RaiseException"/> (the default) a passed one.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    /// <exception cref="ArgumentException">No input requires grad, or an input has a dimension with stride 0.</exception>
    /// <exception cref="NotSupportedException">A complex or sparse input, or a complex output, requires grad.</exception>
    public static GradCheckResult Check(Func<Tensor?[], Tensor[]> function, IReadOnlyList<Tensor?> inputs,
                                        GradCheckOptions? options = null)
        => GradCheckEngine.Run(nameof(GradCheck), function, inputs, options,
                               GradCheckEngine.DefaultInputName, GradCheckEngine.DefaultOutputName);

    /// <summary>Checks the gradient of a function of one tensor, e.g. <c>GradCheck.Check(x =&gt; x.sin(), x)</c>.</summary>
    /// <param name="function">The function.</param>
    /// <param name="input">The point to check at; must require grad.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(Func<Tensor, Tensor> function, Tensor input, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { input }, options);

    /// <summary>Checks the gradients of a function of two tensors with one result.</summary>
    /// <param name="function">The function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(Func<Tensor, Tensor, Tensor> function, Tensor a, Tensor b, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { a, b }, options);

    /// <summary>Checks a custom function of one tensor: its Backward against finite differences of its Forward.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="input">The point to check at; must require grad.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(UnaryFunction function, Tensor input, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { input }, options);

    /// <summary>Checks a custom function of two tensors.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(BinaryFunction function, Tensor a, Tensor b, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { a, b }, options);

    /// <summary>Checks a custom function of three tensors, e.g. <c>GradCheck.Check(linear, x, w, b)</c>; pass
    /// null as <paramref name="c"/> to check it without its optional third input.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="c">The third input, or null (then not checked).</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(TernaryFunction function, Tensor a, Tensor b, Tensor? c, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), new[] { a, b, c }, options);

    /// <summary>Checks a custom function of any number of tensors with any number of results.</summary>
    /// <param name="function">The custom function.</param>
    /// <param name="inputs">The point to check at; only inputs with <c>requires_grad</c> are checked, and null
    /// entries are passed to the function as null.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check(MultiFunction function, IReadOnlyList<Tensor?> inputs, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function), inputs, options);

    /// <summary>Checks a custom function of one tensor with typed arguments, e.g.
    /// <c>GradCheck.Check(mulConstant, x, 5.0)</c>.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="input">The point to check at; must require grad.</param>
    /// <param name="args">The arguments passed to every call (they get no gradient).</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(UnaryFunction<TArgs> function, Tensor input, TArgs args, GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), new[] { input }, options);

    /// <summary>Checks a custom function of two tensors with typed arguments.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="args">The arguments passed to every call.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(BinaryFunction<TArgs> function, Tensor a, Tensor b, TArgs args,
                                               GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), new[] { a, b }, options);

    /// <summary>Checks a custom function of three tensors (the third optional) with typed arguments.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="a">The first input.</param>
    /// <param name="b">The second input.</param>
    /// <param name="c">The third input, or null (then not checked).</param>
    /// <param name="args">The arguments passed to every call.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(TernaryFunction<TArgs> function, Tensor a, Tensor b, Tensor? c, TArgs args,
                                               GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), new[] { a, b, c }, options);

    /// <summary>Checks a custom function of any number of tensors with typed arguments.</summary>
    /// <typeparam name="TArgs">The arguments' type.</typeparam>
    /// <param name="function">The custom function.</param>
    /// <param name="inputs">The point to check at; null entries are passed as null and not checked.</param>
    /// <param name="args">The arguments passed to every call.</param>
    /// <param name="options">Options; <see cref="GradCheckOptions.Default"/> when null.</param>
    /// <returns>The result.</returns>
    /// <exception cref="GradCheckException">The check failed and <see cref="GradCheckOptions.RaiseException"/> is set.</exception>
    public static GradCheckResult Check<TArgs>(MultiFunction<TArgs> function, IReadOnlyList<Tensor?> inputs, TArgs args,
                                               GradCheckOptions? options = null)
        => Check(FunctionForms.Of(function, args), inputs, options);
}
